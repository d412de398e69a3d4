//! Harness for end-to-end tests: network namespaces with veth links, the agent binary run
//! inside them, and helpers to wait for conditions.
//!
//! Everything a test creates is named with the test's tag and the PID, lives only inside
//! namespaces the test made, and is torn down by `Drop` even when the test fails.

pub mod agent;
pub mod bench_e2e;
pub mod cloudstack;
pub mod dhcp_bench;
pub mod guest_client;
pub mod hostile;
pub mod java_answers;
pub mod metrics_bench;
pub mod netns;
pub mod peers;
pub mod road_warrior;
pub mod stored;
pub mod summary;
pub mod traffic;
pub mod vpn_sites;

pub use agent::AgentProc;
pub use netns::{lan_router, veth, Netns};

use std::time::{Duration, Instant};

/// Whether this run may use namespaces. Without root (or `ip`), prints why and returns false
/// so the test can return early; under `CI=true` a missing capability fails the test instead.
pub fn require_root(test: &str) -> bool {
    let why = if unsafe_geteuid() != 0 {
        Some("not running as root")
    } else if !std::path::Path::new("/usr/sbin/ip").exists()
        && !std::path::Path::new("/sbin/ip").exists()
        && !std::path::Path::new("/usr/bin/ip").exists()
    {
        Some("iproute2 `ip` not installed")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: {why} (required under CI=true)")
        }
        Some(why) => {
            eprintln!("SKIP {test}: {why}");
            false
        }
    }
}

/// Like [`require_root`] for an external program (`nft`, `charon`, ...).
pub fn require_program(test: &str, path: &str) -> bool {
    if std::path::Path::new(path).exists() {
        return true;
    }
    let why = format!("{path} not installed");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {why} (required under CI=true)");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The built `vr-agent` binary next to this test executable (`target/<profile>/vr-agent`).
pub fn agent_binary() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("VR_AGENT_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    // Test executables live in target/<profile>/deps, binaries in target/<profile>.
    let mut profile_dir = exe.parent().expect("exe dir").to_path_buf();
    if profile_dir.ends_with("deps") {
        profile_dir.pop();
    }
    let bin = profile_dir.join("vr-agent");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --workspace` before the tests",
        bin.display()
    );
    bin
}

/// A short unique tag for names (namespaces, files): `<prefix><pid % 100000><counter>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
