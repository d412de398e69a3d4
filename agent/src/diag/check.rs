//! `vr-agent check`: one line per health check, exit status 1 if any fails.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, verdict: Verdict, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict,
            detail: detail.into(),
        }
    }
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Verdict::Ok, detail)
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Verdict::Fail, detail)
    }
}

/// Conntrack table usage from /proc (of the agent's network namespace): over 90% of
/// `nf_conntrack_max` fails, over 75% warns.
pub fn conntrack_usage() -> Check {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    match (
        read("/proc/sys/net/netfilter/nf_conntrack_count"),
        read("/proc/sys/net/netfilter/nf_conntrack_max"),
    ) {
        (Some(count), Some(max)) if max > 0 => {
            let pct = count * 100 / max;
            let verdict = match pct {
                90.. => Verdict::Fail,
                75..=89 => Verdict::Warn,
                _ => Verdict::Ok,
            };
            Check::new(
                "conntrack table usage",
                verdict,
                format!("{count} of {max} entries ({pct}%)"),
            )
        }
        _ => Check::new(
            "conntrack table usage",
            Verdict::Warn,
            "nf_conntrack not loaded (no NAT rules yet?)",
        ),
    }
}

/// Free space where the state is written: under 16 MiB free or 95% used fails.
pub fn disk_space(dir: &std::path::Path) -> Check {
    let name = format!("disk space for {}", dir.display());
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return Check::fail(name, "invalid path");
    };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let (rc, st) = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut st), st)
    };
    if rc != 0 {
        return Check::fail(name, std::io::Error::last_os_error().to_string());
    }
    let free = st.f_bavail * st.f_frsize;
    let total = (st.f_blocks * st.f_frsize).max(1);
    let used_pct = 100 - free * 100 / total;
    let verdict = if free < 16 << 20 || used_pct >= 95 {
        Verdict::Fail
    } else {
        Verdict::Ok
    };
    Check::new(
        name,
        verdict,
        format!("{} MiB free ({used_pct}% used)", free >> 20),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_space_of_a_temp_dir_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let c = disk_space(dir.path());
        assert!(c.detail.contains("MiB free"), "{c:?}");
        assert_eq!(
            disk_space(std::path::Path::new("/nonexistent/dir")).verdict,
            Verdict::Fail
        );
    }
}
