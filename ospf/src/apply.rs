//! Incremental apply: the running FRR config (as `show running-config` prints it) and the
//! desired OSPF blocks -> the `vtysh` configure commands that turn one into the other, touching
//! only lines that differ. FRR applies each line in place, so changing the cost of one
//! interface or adding a network never resets an adjacency elsewhere.
//!
//! Managed: the `ip ospf ...` lines of `interface` blocks and the whole `router ospf` block.
//! Everything else in FRR's config (other daemons, descriptions, ...) is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A config block: header (`interface eth2`, `router ospf`) -> its lines, trimmed.
pub type Blocks = BTreeMap<String, Vec<String>>;

/// Parses FRR config text into blocks (top-level lines are ignored).
pub fn parse_blocks(text: &str) -> Blocks {
    let mut out = Blocks::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.is_empty() || line.starts_with('!') {
            if !line.starts_with(' ') {
                current = None;
            }
            continue;
        }
        if !raw.starts_with(' ') {
            if line == "exit" || line == "end" {
                current = None;
            } else if line.starts_with("interface ") || line.starts_with("router ospf") {
                let header = line.split_whitespace().collect::<Vec<_>>().join(" ");
                out.entry(header.clone()).or_default();
                current = Some(header);
            } else {
                current = None;
            }
            continue;
        }
        if let Some(h) = &current {
            out.entry(h.clone())
                .or_default()
                .push(line.trim().to_string());
        }
    }
    out
}

/// Lines that set a single value: changing one is a plain set, never `no` + set.
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
    "ip ospf area ",
    "ip ospf authentication-key ",
];

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

/// One block's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockChange {
    /// `interface eth2` or `router ospf`.
    pub header: String,
    /// Remove the whole block (`no router ospf`).
    pub remove_block: bool,
    pub lines: Vec<String>,
}

/// The commands turning the running config into the desired one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OspfCommands {
    pub blocks: Vec<BlockChange>,
}

impl OspfCommands {
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| if b.remove_block { 1 } else { b.lines.len() })
            .sum()
    }

    /// `vtysh` arguments: `-c "configure terminal" -c "interface eth2" -c "ip ospf cost 20" ...`
    pub fn vtysh_args(&self) -> Vec<String> {
        let mut cmds = vec!["configure terminal".to_string()];
        for b in &self.blocks {
            if b.remove_block {
                cmds.push(format!("no {}", b.header));
                continue;
            }
            cmds.push(b.header.clone());
            cmds.extend(b.lines.iter().cloned());
            cmds.push("exit".into());
        }
        cmds.push("end".into());
        cmds.into_iter()
            .flat_map(|c| ["-c".to_string(), c])
            .collect()
    }
}

/// Renders as the vtysh session an operator would type, keys redacted.
impl fmt::Display for OspfCommands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.blocks.is_empty() {
            return Ok(());
        }
        writeln!(f, "configure terminal")?;
        for b in &self.blocks {
            if b.remove_block {
                writeln!(f, "no {}", b.header)?;
                continue;
            }
            writeln!(f, "{}", b.header)?;
            for l in &b.lines {
                writeln!(f, "{}", crate::render::redact(&format!(" {l}")).trim_end())?;
            }
            writeln!(f, "exit")?;
        }
        writeln!(f, "end")
    }
}

fn managed(header: &str, line: &str) -> bool {
    !header.starts_with("interface ") || line.starts_with("ip ospf")
}

/// What must change in `running` (FRR text) to hold `desired` (OSPF blocks, see
/// [`crate::render::ospf_blocks`]).
pub fn diff(running: &str, desired: &str) -> OspfCommands {
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
    for h in ordered {
        let have: Vec<&String> = run
            .get(h)
            .map(|v| v.iter().filter(|l| managed(h, l)).collect())
            .unwrap_or_default();
        let Some(want_lines) = want.get(h) else {
            if h.starts_with("router ospf") {
                if run.contains_key(h) {
                    out.blocks.push(BlockChange {
                        header: h.clone(),
                        remove_block: true,
                        lines: Vec::new(),
                    });
                }
            } else if !have.is_empty() {
                out.blocks.push(BlockChange {
                    header: h.clone(),
                    remove_block: false,
                    lines: have.iter().map(|l| negate(l)).collect(),
                });
            }
            continue;
        };
        let want_keys: BTreeSet<&str> = want_lines.iter().filter_map(|l| key_of(l)).collect();
        let mut lines = Vec::new();
        for l in &have {
            let replaced = key_of(l).is_some_and(|k| want_keys.contains(k));
            if !want_lines.contains(l) && !replaced {
                lines.push(negate(l));
            }
        }
        for l in want_lines {
            if !have.contains(&l) {
                lines.push(l.clone());
            }
        }
        if !lines.is_empty() || !run.contains_key(h) {
            out.blocks.push(BlockChange {
                header: h.clone(),
                remove_block: false,
                lines,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: &str = "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\nfrr defaults traditional\nhostname vr1\n!\ninterface eth0\n description guests\n ip ospf passive\nexit\n!\ninterface eth3\n ip ospf area 0.0.0.0\n ip ospf cost 10\n ip ospf network point-to-point\nexit\n!\nrouter ospf\n ospf router-id 172.16.0.1\n network 10.1.1.0/24 area 0.0.0.0\nexit\n!\nend\n";

    #[test]
    fn identical_config_needs_nothing() {
        let desired = "interface eth0\n ip ospf passive\nexit\n!\ninterface eth3\n ip ospf area 0.0.0.0\n ip ospf cost 10\n ip ospf network point-to-point\nexit\n!\nrouter ospf\n ospf router-id 172.16.0.1\n network 10.1.1.0/24 area 0.0.0.0\nexit\n!\n";
        assert!(
            diff(RUNNING, desired).is_empty(),
            "{:?}",
            diff(RUNNING, desired)
        );
    }

    #[test]
    fn a_cost_change_touches_only_that_line() {
        let desired = "interface eth0\n ip ospf passive\nexit\ninterface eth3\n ip ospf area 0.0.0.0\n ip ospf cost 20\n ip ospf network point-to-point\nexit\nrouter ospf\n ospf router-id 172.16.0.1\n network 10.1.1.0/24 area 0.0.0.0\n network 10.9.0.0/24 area 0.0.0.0\nexit\n";
        let d = diff(RUNNING, desired);
        assert_eq!(
            d.vtysh_args()
                .iter()
                .skip(1)
                .step_by(2)
                .cloned()
                .collect::<Vec<_>>(),
            [
                "configure terminal",
                "interface eth3",
                "ip ospf cost 20",
                "exit",
                "router ospf",
                "network 10.9.0.0/24 area 0.0.0.0",
                "exit",
                "end"
            ]
        );
    }

    #[test]
    fn removal_and_secrets() {
        let d = diff(RUNNING, "");
        let text = d.to_string();
        assert!(
            text.contains("no router ospf")
                && text.contains("no ip ospf passive")
                && text.contains("no ip ospf cost 10"),
            "{text}"
        );
        assert!(
            !text.contains("description"),
            "non-OSPF lines are not managed: {text}"
        );
        let desired = "interface eth3\n ip ospf message-digest-key 1 md5 s3cret\nexit\n";
        let d = diff("", desired);
        assert!(!d.to_string().contains("s3cret"), "{d}");
        assert!(d
            .vtysh_args()
            .contains(&"ip ospf message-digest-key 1 md5 s3cret".to_string()));
        let back = diff(
            "interface eth3\n ip ospf message-digest-key 1 md5 s3cret\nexit\n",
            "",
        );
        assert!(back
            .vtysh_args()
            .contains(&"no ip ospf message-digest-key 1".to_string()));
    }
}
