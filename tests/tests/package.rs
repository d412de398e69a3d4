//! Issue 8: the Debian package builds from the workspace, carries the binary, unit, config,
//! man page and completions, declares its dependencies, passes lintian without errors, and its
//! unit passes `systemd-analyze verify`. And the agent's sd_notify READY=1 comes only after
//! the boot replay.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vr_tests::{agent_binary, require_program, require_root, AgentProc, Netns};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn debian_package_is_complete_and_lintian_clean() {
    if !require_program(
        "debian_package_is_complete_and_lintian_clean",
        "/usr/bin/dpkg-deb",
    ) {
        return;
    }
    let deb = sh(Command::new("bash")
        .arg(repo().join("image/build-deb.sh"))
        .arg("--bin")
        .arg(agent_binary())
        .current_dir(repo()));
    let deb = repo().join(deb.trim());
    let contents = sh(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/sbin/vr-agent",
        "./lib/systemd/system/vr-agent.service",
        "./usr/lib/modules-load.d/vr-agent.conf",
        "./etc/vr-agent/config.toml",
        "./usr/share/man/man8/vr-agent.8.gz",
        "./usr/share/bash-completion/completions/vr-agent",
        "./usr/share/doc/vr-agent/copyright",
        "./opt/cloud/bin/update_config.py",
        "./opt/cloud/bin/get_template_version.sh",
        "./opt/cloud/bin/checkbatchs2svpn.sh",
        "./opt/cloud/bin/netusage.sh",
        "./opt/cloud/bin/get_diagnostics_files.py",
    ] {
        assert!(
            contents.contains(path),
            "{path} missing from the package:\n{contents}"
        );
    }
    let info = sh(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for dep in [
        "nftables",
        "conntrack",
        "strongswan-charon",
        "strongswan-swanctl",
        "frr",
        "libc6",
    ] {
        assert!(info.contains(dep), "dependency {dep} not declared:\n{info}");
    }
    assert!(
        info.contains("conffiles") && info.contains("postinst") && info.contains("postrm"),
        "{info}"
    );

    if require_program(
        "debian_package_is_complete_and_lintian_clean",
        "/usr/bin/lintian",
    ) {
        let out = Command::new("lintian")
            .args(["--tag-display-limit", "0"])
            .arg(&deb)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    }

    // systemd-analyze verify needs the ExecStart binary to exist: point it at the staged one.
    if require_program(
        "debian_package_is_complete_and_lintian_clean",
        "/usr/bin/systemd-analyze",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let staged = repo().join("target/deb/stage/usr/sbin/vr-agent");
        let unit = std::fs::read_to_string(repo().join("systemd/vr-agent.service")).unwrap();
        assert!(
            unit.contains("Type=notify")
                && unit.contains("WatchdogSec=")
                && unit.contains("ProtectSystem=strict")
        );
        std::fs::write(
            dir.path().join("vr-agent.service"),
            unit.replace("/usr/sbin/vr-agent", staged.to_str().unwrap()),
        )
        .unwrap();
        sh(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join("vr-agent.service")));
    }
}

#[test]
fn ready_is_notified_only_after_the_replay() {
    if !require_root("ready_is_notified_only_after_the_replay") {
        return;
    }
    let ns = Netns::new("vrrdy");
    let mut agent = AgentProc::new(Some(&ns.name));
    let (code, r) = agent.apply_text("p.json", r#"{"schema":1,"routes":[]}"#);
    assert_eq!(code, 0, "{r}");
    let sock_path = agent.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    agent
        .env
        .push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    agent.start();
    let mut buf = [0u8; 512];
    let mut ready = false;
    while let Ok(n) = sock.recv(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l == "READY=1") {
            // The log is written synchronously: the replay's line must precede READY=1.
            let log = agent.log_text();
            assert!(
                log.contains("replay done"),
                "READY=1 before the replay finished; log:\n{log}"
            );
            ready = true;
            break;
        }
    }
    assert!(ready, "no READY=1 received");
    // And the main loop pings the watchdog.
    let mut watchdog = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") {
            watchdog = true;
            break;
        }
    }
    assert!(watchdog, "no WATCHDOG=1 received");
}
