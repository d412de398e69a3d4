//! Test-only crash points. `VR_AGENT_TEST_HOOK=<point>:<marker file>` makes the agent create
//! the marker file at that point and then stop there (sleep), so a test can SIGKILL it at an
//! exact instant (e.g. between journaling a push's intent and its commit). Unset in production:
//! one environment lookup per apply.

/// Pauses forever at `point` if the test hook names it.
pub fn point(name: &str) {
    let Ok(spec) = std::env::var("VR_AGENT_TEST_HOOK") else {
        return;
    };
    let Some((point, marker)) = spec.split_once(':') else {
        return;
    };
    if point != name {
        return;
    }
    let _ = std::fs::write(marker, name);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
