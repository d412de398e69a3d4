//! The advanced checks (CloudStack runs them on `health_checks_advanced_run_interval`), each
//! blocking and bounded in time, each comparing the committed state with what really runs:
//!
//! - `iptables_check.py`: every port forward of the state is an element of the kernel's
//!   forward maps (table `ip vr`, read with `nft -j`, compared by `vr_nat::present`);
//! - `haproxy_check.py`: haproxy runs, and its config file is the one the agent renders from
//!   the state now (a config edited or left behind by a failed reload shows here);
//! - `dhcp_check.py`: dnsmasq runs, and each VM the management server listed has its static
//!   lease (MAC and address) in the files dnsmasq serves;
//! - `dns_check.py`: dnsmasq answers on every guest gateway: a real query for each listed
//!   VM's name must return its address (without a list, the gateway's `data-server` name).
//!
//! A check with nothing to check is not run (CloudStack's scripts print nothing then, and the
//! management server leaves such a check out).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vr_model::monitor::HealthChecks;

use super::{outcome, Env, Outcome};
use crate::diag::check::Verdict;
use crate::state::DesiredState;

/// Names listed in a message at most.
const LIST: usize = 10;
/// A DNS question waits this long for its answer.
const DNS_LIMIT: Duration = Duration::from_secs(2);
/// At most this many names are asked per run (each question is one UDP round trip).
const MAX_QUESTIONS: usize = 64;
/// A push may be in flight while the kernel is read (the kernel gets it before `state.json`
/// does): a mismatch is looked at again after this, with the state read again.
const SETTLE: Duration = Duration::from_secs(1);

/// Every advanced check the config and the state call for, minus the excluded ones.
pub fn run(h: &HealthChecks, env: &Env) -> Vec<Outcome> {
    let wanted = |n: &str| !h.excluded.iter().any(|e| e == n);
    let Some(state) = env.committed() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if wanted("iptables_check.py") && !state.nat.port_forwards.is_empty() {
        let first = forwards(&state);
        out.push(if first.verdict == Verdict::Ok {
            first
        } else {
            std::thread::sleep(SETTLE);
            env.committed().map_or(first, |s| forwards(&s))
        });
    }
    if wanted("haproxy_check.py") && !state.lb.is_empty() {
        out.push(haproxy(&state, env));
    }
    if wanted("dhcp_check.py") && !state.dhcp.networks.is_empty() {
        out.push(dhcp(&state, h, env));
    }
    if wanted("dns_check.py") && !state.dhcp.networks.is_empty() {
        out.push(dns(&state, h));
    }
    out
}

fn forwards(state: &DesiredState) -> Outcome {
    const NAME: &str = "iptables_check.py";
    let t = Instant::now();
    let listing = match crate::concern::nft_script::nft(&["-j", "list", "table", "ip", "vr"]) {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            let e = String::from_utf8_lossy(&o.stderr).trim().to_string();
            return outcome(NAME, t, Verdict::Fail, format!("table ip vr: {e}"));
        }
        Err(e) => return outcome(NAME, t, Verdict::Fail, e.to_string()),
    };
    match vr_nat::present::missing_forwards(&state.nat, &listing, LIST) {
        Err(e) => outcome(NAME, t, Verdict::Fail, e),
        Ok(p) if p.missing_total == 0 => outcome(
            NAME,
            t,
            Verdict::Ok,
            format!(
                "All {} port forwards are in the ruleset ({} map elements)",
                state.nat.port_forwards.len(),
                p.wanted
            ),
        ),
        Ok(p) => outcome(
            NAME,
            t,
            Verdict::Fail,
            format!(
                "Missing port forwarding rules: {} of {} map elements absent: {}",
                p.missing_total,
                p.wanted,
                p.missing.join("; ")
            ),
        ),
    }
}

fn haproxy(state: &DesiredState, env: &Env) -> Outcome {
    const NAME: &str = "haproxy_check.py";
    let t = Instant::now();
    let paths = crate::concern::lb::paths(&env.run_dir);
    let want = vr_lb::render::render(&state.lb, &paths, crate::concern::lb::run_as().as_ref());
    let master =
        crate::daemon::Owned::new("haproxy", paths.pid(), paths.config().display().to_string());
    if master.live_pid().is_none() {
        return outcome(NAME, t, Verdict::Fail, "haproxy is not running".into());
    }
    match std::fs::read_to_string(paths.config()) {
        Ok(running) if running == want.config => outcome(
            NAME,
            t,
            Verdict::Ok,
            "haproxy runs the configuration rendered from the state".into(),
        ),
        Ok(running) => {
            let (w, r): (Vec<&str>, Vec<&str>) =
                (want.config.lines().collect(), running.lines().collect());
            let at = w
                .iter()
                .zip(&r)
                .position(|(a, b)| a != b)
                .unwrap_or(w.len().min(r.len()));
            outcome(
                NAME,
                t,
                Verdict::Fail,
                format!(
                    "haproxy.cfg differs from the configuration rendered from the state at line {}: {:?} instead of {:?}",
                    at + 1,
                    r.get(at).copied().unwrap_or("(end of file)"),
                    w.get(at).copied().unwrap_or("(end of file)"),
                ),
            )
        }
        Err(e) => outcome(
            NAME,
            t,
            Verdict::Fail,
            format!("{}: {e}", paths.config().display()),
        ),
    }
}

fn dhcp(state: &DesiredState, h: &HealthChecks, env: &Env) -> Outcome {
    const NAME: &str = "dhcp_check.py";
    let t = Instant::now();
    let paths = crate::concern::dhcp::paths(&env.run_dir, &env.state_dir);
    let daemon = crate::daemon::Owned::new(
        "dnsmasq",
        paths.pid(),
        format!("--conf-file={}", paths.conf().display()),
    );
    if daemon.live_pid().is_none() {
        return outcome(NAME, t, Verdict::Fail, "dnsmasq is not running".into());
    }
    // Each listed VM's static lease: the file of its MAC (the state's spelling) holds its
    // address. Without a MAC, the state's host with that address names the file.
    let mut missing = Vec::new();
    for vm in &h.vms {
        let mac = vm.mac.map(|m| m.to_string()).or_else(|| {
            state
                .dhcp
                .hosts
                .iter()
                .find(|x| x.ipv4 == vm.ip)
                .map(|x| x.mac.clone())
        });
        let served = mac.is_some_and(|m| {
            std::fs::read_to_string(paths.host_file(vr_guest::render::HostDir::Dhcp, &m))
                .is_ok_and(|text| text.contains(&vm.ip.to_string()))
        });
        if !served {
            missing.push(format!("{} {}", vm.name, vm.ip));
        }
    }
    if missing.is_empty() {
        let msg = format!(
            "dnsmasq runs; all {} VMs have their DHCP entry",
            h.vms.len()
        );
        outcome(NAME, t, Verdict::Ok, msg)
    } else {
        let n = missing.len();
        missing.truncate(LIST);
        let msg = format!("Missing DHCP entries for {n} VMs: {}", missing.join(", "));
        outcome(NAME, t, Verdict::Fail, msg)
    }
}

/// The guest gateway (dnsmasq's address) of the network holding `ip`.
fn gateway_of(state: &DesiredState, ip: Ipv4Addr) -> Option<Ipv4Addr> {
    state
        .dhcp
        .networks
        .iter()
        .find(|n| n.address.contains(&ip))
        .map(|n| n.address.addr())
}

fn dns(state: &DesiredState, h: &HealthChecks) -> Outcome {
    const NAME: &str = "dns_check.py";
    let t = Instant::now();
    // (server, name, the address it must answer)
    let questions: Vec<(Ipv4Addr, String, Ipv4Addr)> = if h.vms.is_empty() {
        state
            .dhcp
            .networks
            .iter()
            .map(|n| {
                let gw = n.address.addr();
                (gw, vr_guest::render::DATA_SERVER.to_string(), gw)
            })
            .collect()
    } else {
        h.vms
            .iter()
            .filter_map(|vm| Some((gateway_of(state, vm.ip)?, vm.name.clone(), vm.ip)))
            .collect()
    };
    let mut failed = Vec::new();
    for (server, name, want) in questions.iter().take(MAX_QUESTIONS) {
        match super::dns::ask(*server, name, DNS_LIMIT) {
            Ok(a) if a.addresses.contains(want) => {}
            Ok(a) => failed.push(format!(
                "{name} at {server}: rcode {}, {:?} instead of {want}",
                a.rcode, a.addresses
            )),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    let asked = questions.len().min(MAX_QUESTIONS);
    if failed.is_empty() {
        let msg = format!("dnsmasq answered all {asked} names on the guest gateways");
        outcome(NAME, t, Verdict::Ok, msg)
    } else {
        let n = failed.len();
        failed.truncate(LIST);
        let msg = format!("{n} of {asked} names not answered: {}", failed.join("; "));
        outcome(NAME, t, Verdict::Fail, msg)
    }
}
