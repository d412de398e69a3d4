//! The basic checks, blocking (run on a blocking thread), each bounded in time:
//! `gateways_check.py`, `disk_space_check.py`, `memory_usage_check.py`, `cpu_usage_check.py`,
//! `router_version_check.py` (in [`super::version`]).
//! A check whose threshold the push does not carry is not run (CloudStack's scripts skip it).

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use vr_model::monitor::HealthChecks;

use super::{outcome, Env, Outcome};
use crate::diag::check::Verdict;

/// At most this many gateways are pinged (in parallel).
const MAX_GATEWAYS: usize = 16;
/// Echo requests per gateway, one second apart at most; any answer is success.
const PINGS: &str = "3";
/// The CPU is sampled over this long.
const CPU_SAMPLE: Duration = Duration::from_millis(500);

/// Every basic check the config asks for, minus the excluded ones.
pub fn basic(h: &HealthChecks, env: &Env) -> Vec<Outcome> {
    let wanted = |n: &str| !h.excluded.iter().any(|e| e == n);
    let mut out = Vec::new();
    if wanted("gateways_check.py") && !h.gateways.is_empty() {
        out.push(gateways(&h.gateways));
    }
    if let (true, Some(min)) = (wanted("disk_space_check.py"), h.min_disk_mb) {
        out.push(disk(min.0));
    }
    if let (true, Some(max)) = (wanted("memory_usage_check.py"), h.max_memory_pct) {
        out.push(memory(max.0));
    }
    if let (true, Some(max)) = (wanted("cpu_usage_check.py"), h.max_cpu_pct) {
        out.push(cpu(max.0));
    }
    if let (true, Some(v)) = (wanted("router_version_check.py"), &h.version) {
        out.push(super::version::check(v, env));
    }
    out
}

fn answers(gw: Ipv4Addr) -> bool {
    let g = gw.to_string();
    crate::process::output_within(
        Command::new("ping").args(["-n", "-q", "-c", PINGS, "-i", "0.3", "-W", "1", "--", &g]),
        Duration::from_secs(5),
    )
    .is_ok_and(|o| o.status.success())
}

/// Every gateway answers ping (CloudStack's message texts).
pub fn gateways(gws: &[Ipv4Addr]) -> Outcome {
    let t = Instant::now();
    let gws = &gws[..gws.len().min(MAX_GATEWAYS)];
    let down: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = gws
            .iter()
            .map(|g| (*g, s.spawn(move || answers(*g))))
            .collect();
        handles
            .into_iter()
            .filter_map(|(g, h)| (!matches!(h.join(), Ok(true))).then(|| format!("'{g}'")))
            .collect()
    });
    if down.is_empty() {
        let msg = format!("All {} gateways are reachable via ping", gws.len());
        outcome("gateways_check.py", t, Verdict::Ok, msg)
    } else {
        let msg = format!("Unreachable gateways found-\n[{}]", down.join(", "));
        outcome("gateways_check.py", t, Verdict::Fail, msg)
    }
}

fn disk(min_mb: f64) -> Outcome {
    let t = Instant::now();
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a NUL-terminated literal.
    let (rc, st) = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c"/".as_ptr(), &mut st), st)
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return outcome(
            "disk_space_check.py",
            t,
            Verdict::Fail,
            format!("statvfs /: {e}"),
        );
    }
    let free_mb = (st.f_bavail as f64 * st.f_frsize as f64) / (1024.0 * 1024.0);
    if free_mb < min_mb {
        let msg = format!("Insufficient free space is {free_mb:.0} MB");
        outcome("disk_space_check.py", t, Verdict::Fail, msg)
    } else {
        let msg = format!("Sufficient free space is {free_mb:.0} MB");
        outcome("disk_space_check.py", t, Verdict::Ok, msg)
    }
}

fn meminfo_kb(info: &str, key: &str) -> Option<f64> {
    info.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn memory(max_pct: f64) -> Outcome {
    let t = Instant::now();
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let (Some(total), Some(avail)) = (
        meminfo_kb(&info, "MemTotal:"),
        meminfo_kb(&info, "MemAvailable:"),
    ) else {
        let msg = "Failed to read /proc/meminfo".to_string();
        return outcome("memory_usage_check.py", t, Verdict::Fail, msg);
    };
    let used = (total - avail) * 100.0 / total.max(1.0);
    if used > max_pct {
        let msg = format!("Memory Usage {used:.1}% has crossed threshold of {max_pct}%");
        outcome("memory_usage_check.py", t, Verdict::Fail, msg)
    } else {
        let msg = format!("Memory Usage within limits with current at {used:.1}%");
        outcome("memory_usage_check.py", t, Verdict::Ok, msg)
    }
}

/// (busy, total) jiffies from the first line of /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    // idle + iowait
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

fn cpu(max_pct: f64) -> Outcome {
    let t = Instant::now();
    let a = cpu_times();
    std::thread::sleep(CPU_SAMPLE);
    let b = cpu_times();
    let Some(((b0, t0), (b1, t1))) = a.zip(b) else {
        let msg = "Failed to read /proc/stat".to_string();
        return outcome("cpu_usage_check.py", t, Verdict::Fail, msg);
    };
    let used = (b1 - b0) as f64 * 100.0 / ((t1 - t0).max(1) as f64);
    if used > max_pct {
        let msg = format!("CPU Usage {used:.1}% has crossed threshold of {max_pct}%");
        outcome("cpu_usage_check.py", t, Verdict::Fail, msg)
    } else {
        let msg = format!("CPU Usage within limits with current at {used:.1}%");
        outcome("cpu_usage_check.py", t, Verdict::Ok, msg)
    }
}
