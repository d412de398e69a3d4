//! Incremental apply, planned as data: FRR's running config (as `show running-config` prints
//! it), the router id ospfd actually uses, and the desired OSPF blocks -> the configuration
//! FRR must be sent, in an order FRR accepts, touching only lines that differ. FRR applies
//! each line in place, so changing the cost of one interface or adding a network never resets
//! an adjacency elsewhere.
//!
//! Managed: the `ip ospf ...` lines of `interface` blocks and the whole `router ospf` block.
//! Everything else in FRR's config (other daemons, descriptions, ...) is left alone.
//!
//! Order, because FRR refuses some transitions made the other way round:
//! 1. every removal (`no ...` lines, `no router ospf`) in every block. FRR 8.4 refuses
//!    `ip ospf area B` while area A is set on the interface ("Must remove previous area
//!    config"), `ip ospf area` while `network` statements exist ("Please remove all network
//!    commands first") and `network` while any interface has an area ("Please remove all ip
//!    ospf area x.x.x.x commands first");
//! 2. every addition or changed single-valued line;
//! 3. `clear ip ospf process` when the router id of a running instance changes: ospfd keeps
//!    the old id until the process is cleared ("For this router-id change to take effect, use
//!    clear ip ospf process"). A router-id change resets every adjacency anyway.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

pub use crate::blocks::{parse_blocks, Blocks};

/// Lines that set a single value: changing one is a plain set, never `no` + set. (`ip ospf
/// area` is not one of them: FRR wants the old area removed first.)
const SINGLE_VALUED: &[&str] = &[
    "ospf router-id ",
    "timers throttle spf ",
    "timers throttle lsa all ",
    "timers lsa min-arrival ",
    "ip ospf cost ",
    "ip ospf hello-interval ",
    "ip ospf dead-interval ",
    "ip ospf retransmit-interval ",
    "ip ospf transmit-delay ",
    "ip ospf authentication-key ",
];

/// The exec command that makes a changed router id take effect.
pub const CLEAR_PROCESS: &str = "clear ip ospf process";

fn key_of(line: &str) -> Option<&'static str> {
    SINGLE_VALUED.iter().copied().find(|k| line.starts_with(k))
}

/// The `no` form of a line (FRR wants the key id, not the key, for message-digest keys).
fn negate(line: &str) -> String {
    if let Some(rest) = line.strip_prefix("ip ospf message-digest-key ") {
        let id = rest.split_whitespace().next().unwrap_or("");
        return format!("no ip ospf message-digest-key {id}");
    }
    if line.starts_with("ip ospf authentication-key ") {
        return "no ip ospf authentication-key".to_string();
    }
    format!("no {line}")
}

/// One block's changes within one phase. Lines may hold keys: `Debug` redacts them.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockChange {
    /// `interface eth2` or `router ospf`.
    pub header: String,
    /// Remove the whole block (`no router ospf`).
    pub remove_block: bool,
    pub lines: Vec<String>,
}

impl fmt::Debug for BlockChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|l| crate::render::redact(l))
            .collect();
        f.debug_struct("BlockChange")
            .field("header", &self.header)
            .field("remove_block", &self.remove_block)
            .field("lines", &lines)
            .finish()
    }
}

/// The commands turning the running config into the desired one, in the order they are sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OspfCommands {
    /// Phase 1: every `no` line and `no router ospf`.
    pub removals: Vec<BlockChange>,
    /// Phase 2: every added or changed line.
    pub additions: Vec<BlockChange>,
    /// Phase 3: `clear ip ospf process` (the router id of a running instance changes).
    pub clear_process: bool,
}

impl OspfCommands {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elementary changes: lines, removed blocks, and the process clear.
    pub fn len(&self) -> usize {
        self.removals
            .iter()
            .chain(&self.additions)
            .map(|b| if b.remove_block { 1 } else { b.lines.len() })
            .sum::<usize>()
            + usize::from(self.clear_process)
    }

    /// The configuration lines, as `vtysh -f` reads them (it starts in configure mode). This
    /// text holds keys: it is written to vtysh's standard input, never put on a command line.
    pub fn script(&self) -> String {
        let mut out = String::new();
        for b in self.removals.iter().chain(&self.additions) {
            if b.remove_block {
                out.push_str(&format!("no {}\n", b.header));
                continue;
            }
            out.push_str(&b.header);
            out.push('\n');
            for l in &b.lines {
                out.push_str(&format!(" {l}\n"));
            }
            out.push_str("exit\n");
        }
        out
    }

    /// Exec-mode commands to run after the configuration (`vtysh -c`; no secrets).
    pub fn exec_after(&self) -> Vec<&'static str> {
        if self.clear_process {
            vec![CLEAR_PROCESS]
        } else {
            Vec::new()
        }
    }
}

/// Renders as the vtysh session an operator would type, keys redacted.
impl fmt::Display for OspfCommands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        let script = self.script();
        if !script.is_empty() {
            writeln!(f, "configure terminal")?;
            f.write_str(&crate::render::redact(&script))?;
            writeln!(f, "end")?;
        }
        for c in self.exec_after() {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

fn managed(header: &str, line: &str) -> bool {
    !header.starts_with("interface ") || line.starts_with("ip ospf")
}

/// What must be sent so that FRR, whose running config is `running` and whose ospfd uses
/// `effective_router_id` (`show ip ospf json`, None when unknown or no instance), holds
/// `desired` (OSPF blocks, see [`crate::render::ospf_blocks`]).
pub fn plan(running: &str, effective_router_id: Option<Ipv4Addr>, desired: &str) -> OspfCommands {
    let run = parse_blocks(running);
    let want = parse_blocks(desired);
    let headers: BTreeSet<&String> = run.keys().chain(want.keys()).collect();
    let mut out = OspfCommands::default();
    // Interfaces first, then the router block, as FRR prints them.
    let mut ordered: Vec<&String> = headers
        .iter()
        .copied()
        .filter(|h| h.starts_with("interface "))
        .collect();
    ordered.extend(
        headers
            .iter()
            .copied()
            .filter(|h| !h.starts_with("interface ")),
    );
    let block = |header: &str, lines: Vec<String>| BlockChange {
        header: header.to_string(),
        remove_block: false,
        lines,
    };
    for h in ordered {
        let have: Vec<&String> = run
            .get(h)
            .map(|v| v.iter().filter(|l| managed(h, l)).collect())
            .unwrap_or_default();
        let want_lines: Option<Vec<&String>> = want
            .get(h)
            .map(|v| v.iter().filter(|l| managed(h, l)).collect());
        let Some(want_lines) = want_lines else {
            if h.starts_with("router ospf") {
                out.removals.push(BlockChange {
                    header: h.clone(),
                    remove_block: true,
                    lines: Vec::new(),
                });
            } else if !have.is_empty() {
                out.removals
                    .push(block(h, have.iter().map(|l| negate(l)).collect()));
            }
            continue;
        };
        let want_keys: BTreeSet<&str> = want_lines.iter().filter_map(|l| key_of(l)).collect();
        let removed: Vec<String> = have
            .iter()
            .filter(|l| {
                !want_lines.contains(l) && !key_of(l).is_some_and(|k| want_keys.contains(k))
            })
            .map(|l| negate(l))
            .collect();
        let added: Vec<String> = want_lines
            .iter()
            .filter(|l| !have.contains(l))
            .map(|l| l.to_string())
            .collect();
        if !removed.is_empty() {
            out.removals.push(block(h, removed));
        }
        if !added.is_empty() {
            out.additions.push(block(h, added));
        }
    }
    // A running instance keeps its old id until cleared; a new one takes the configured id.
    if let (Some(old), Some(new)) = (run.get("router ospf"), crate::blocks::router_id(&want)) {
        let configured = old
            .iter()
            .any(|l| l.strip_prefix("ospf router-id ") == Some(&new.to_string()));
        out.clear_process = !configured || effective_router_id.is_some_and(|id| id != new);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: &str = "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\nfrr defaults traditional\nhostname vr1\n!\ninterface eth0\n description guests\n ip ospf passive\nexit\n!\ninterface eth3\n ip ospf area 0.0.0.0\n ip ospf cost 10\n ip ospf network point-to-point\nexit\n!\nrouter ospf\n ospf router-id 172.16.0.1\n network 10.1.1.0/24 area 0.0.0.0\nexit\n!\nend\n";
    const RID: Option<Ipv4Addr> = Some(Ipv4Addr::new(172, 16, 0, 1));

    fn sent(c: &OspfCommands) -> Vec<String> {
        let mut v: Vec<String> = c.script().lines().map(|l| l.trim().to_string()).collect();
        v.extend(c.exec_after().iter().map(|s| s.to_string()));
        v
    }

    #[test]
    fn identical_config_needs_nothing() {
        let desired = "interface eth0\n ip ospf passive\nexit\n!\ninterface eth3\n ip ospf area 0.0.0.0\n ip ospf cost 10\n ip ospf network point-to-point\nexit\n!\nrouter ospf\n ospf router-id 172.16.0.1\n network 10.1.1.0/24 area 0.0.0.0\nexit\n!\n";
        let p = plan(RUNNING, RID, desired);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn a_cost_change_touches_only_that_line() {
        let desired = "interface eth0\n ip ospf passive\nexit\ninterface eth3\n ip ospf area 0.0.0.0\n ip ospf cost 20\n ip ospf network point-to-point\nexit\nrouter ospf\n ospf router-id 172.16.0.1\n network 10.1.1.0/24 area 0.0.0.0\n network 10.9.0.0/24 area 0.0.0.0\nexit\n";
        let p = plan(RUNNING, RID, desired);
        assert_eq!(
            sent(&p),
            [
                "interface eth3",
                "ip ospf cost 20",
                "exit",
                "router ospf",
                "network 10.9.0.0/24 area 0.0.0.0",
                "exit",
            ]
        );
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn an_area_change_removes_the_old_area_first() {
        let desired = "interface eth0\n ip ospf passive\nexit\ninterface eth3\n ip ospf area 0.0.0.1\n ip ospf cost 10\n ip ospf network point-to-point\nexit\nrouter ospf\n ospf router-id 172.16.0.1\n network 10.1.1.0/24 area 0.0.0.0\nexit\n";
        assert_eq!(
            sent(&plan(RUNNING, RID, desired)),
            [
                "interface eth3",
                "no ip ospf area 0.0.0.0",
                "exit",
                "interface eth3",
                "ip ospf area 0.0.0.1",
                "exit",
            ]
        );
    }

    #[test]
    fn switching_between_networks_and_interface_areas_removes_before_adding() {
        let networks = "interface eth3\n ip ospf cost 10\nexit\nrouter ospf\n ospf router-id 172.16.0.1\n network 172.16.0.0/30 area 0.0.0.0\nexit\n";
        let areas = "interface eth3\n ip ospf area 0.0.0.0\n ip ospf cost 10\nexit\nrouter ospf\n ospf router-id 172.16.0.1\nexit\n";
        assert_eq!(
            sent(&plan(networks, RID, areas)),
            [
                "router ospf",
                "no network 172.16.0.0/30 area 0.0.0.0",
                "exit",
                "interface eth3",
                "ip ospf area 0.0.0.0",
                "exit",
            ]
        );
        assert_eq!(
            sent(&plan(areas, RID, networks)),
            [
                "interface eth3",
                "no ip ospf area 0.0.0.0",
                "exit",
                "router ospf",
                "network 172.16.0.0/30 area 0.0.0.0",
                "exit",
            ]
        );
    }

    #[test]
    fn a_router_id_change_clears_the_process_after_the_config() {
        let desired = RUNNING.replace("router-id 172.16.0.1", "router-id 172.16.0.9");
        let p = plan(RUNNING, RID, &desired);
        assert_eq!(
            sent(&p),
            [
                "router ospf",
                "ospf router-id 172.16.0.9",
                "exit",
                CLEAR_PROCESS
            ]
        );
        assert_eq!(p.len(), 2);
        assert!(
            p.to_string().ends_with("end\nclear ip ospf process\n"),
            "{p}"
        );
        // Configured but not in effect (a clear that never ran): only the clear.
        let p = plan(&desired, RID, &desired);
        assert_eq!(sent(&p), [CLEAR_PROCESS]);
        // A new instance takes its id at once: no clear.
        let p = plan("", None, &desired);
        assert!(!p.clear_process && !p.is_empty());
        // Removing OSPF needs no clear either.
        assert!(!plan(RUNNING, RID, "").clear_process);
    }

    #[test]
    fn removal_and_secrets() {
        let p = plan(RUNNING, RID, "");
        let text = p.to_string();
        assert!(
            text.contains("no router ospf")
                && text.contains("no ip ospf passive")
                && text.contains("no ip ospf cost 10"),
            "{text}"
        );
        assert!(p.additions.is_empty(), "{p:?}");
        assert!(
            !text.contains("description"),
            "non-OSPF lines are not managed: {text}"
        );
        let desired = "interface eth3\n ip ospf message-digest-key 1 md5 s3cret\nexit\n";
        let p = plan("", None, desired);
        assert!(!p.to_string().contains("s3cret"), "{p}");
        assert!(!format!("{p:?}").contains("s3cret"), "{p:?}");
        assert!(p
            .script()
            .contains(" ip ospf message-digest-key 1 md5 s3cret\n"));
        let back = plan(
            "interface eth3\n ip ospf message-digest-key 1 md5 s3cret\nexit\n",
            None,
            "",
        );
        assert_eq!(
            sent(&back),
            ["interface eth3", "no ip ospf message-digest-key 1", "exit"]
        );
        // A changed key: the old id goes before the new key is set.
        let p = plan(
            desired,
            None,
            "interface eth3\n ip ospf message-digest-key 1 md5 n3w\nexit\n",
        );
        assert_eq!(
            sent(&p),
            [
                "interface eth3",
                "no ip ospf message-digest-key 1",
                "exit",
                "interface eth3",
                "ip ospf message-digest-key 1 md5 n3w",
                "exit"
            ]
        );
    }
}
