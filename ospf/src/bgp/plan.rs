//! The vtysh configuration that turns FRR's `router bgp` block into the desired one, planned as
//! data from the two texts (FRR's running config and [`super::bgp_block`]).
//!
//! Per line, so a change to one neighbor never touches another's session:
//! - a neighbor absent from the desired block goes with one `no neighbor ADDR` (its other
//!   lines, address families included, go with it);
//! - a changed single-valued line (`bgp router-id`, a neighbor's `remote-as`, `password`,
//!   `ebgp-multihop`, `timers connect`) is set again, never removed first (FRR replaces it);
//! - every other line is added or negated (`no LINE`; `no no X` is `X`).
//!
//! Only `router bgp` is managed: `router ospf`, interfaces and everything else in FRR's
//! config is neither read nor written here (the OSPF concern ignores `router bgp` likewise).
//! A different local AS means a new instance: `no router bgp OLD`, then the whole block (every
//! session restarts; FRR cannot renumber a running instance).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One `router bgp` block: top-level lines and address-family sub-blocks, trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpBlock {
    pub local_as: String,
    pub top: Vec<String>,
    /// `ipv4 unicast` -> its lines.
    pub afs: BTreeMap<String, Vec<String>>,
}

/// Finds the (default-VRF) `router bgp` block of FRR config text.
pub fn parse_block(text: &str) -> Option<BgpBlock> {
    let mut out: Option<BgpBlock> = None;
    let mut inside = false;
    let mut af: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if !raw.starts_with(' ') {
            if out.is_some() && inside {
                // the block ends at its `exit` (or any other top-level line)
                inside = false;
            }
            if let Some(asn) = line.strip_prefix("router bgp ") {
                if !asn.contains(' ') && out.is_none() {
                    out = Some(BgpBlock {
                        local_as: asn.to_string(),
                        ..BgpBlock::default()
                    });
                    inside = true;
                }
            }
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('!') {
            continue;
        }
        let b = out.as_mut()?;
        if let Some(name) = line.strip_prefix("address-family ") {
            af = Some(name.to_string());
            b.afs.entry(name.to_string()).or_default();
        } else if line == "exit-address-family" {
            af = None;
        } else if let Some(a) = &af {
            b.afs.entry(a.clone()).or_default().push(line.to_string());
        } else {
            b.top.push(line.to_string());
        }
    }
    out
}

/// The commands, in the order they are sent. Lines may hold passwords: `Debug` and `Display`
/// redact them; [`BgpCommands::script`] (vtysh's standard input) does not.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BgpCommands {
    /// `no router bgp AS` before anything else (BGP removed, or the local AS changed).
    pub remove_instance: Option<String>,
    /// The AS of the block the lines go into.
    pub local_as: String,
    /// Removed neighbors, then negated lines, then added or changed lines.
    pub top: Vec<String>,
    /// Per address family, in the same order.
    pub afs: Vec<(String, Vec<String>)>,
}

impl BgpCommands {
    /// Elementary changes.
    pub fn len(&self) -> usize {
        usize::from(self.remove_instance.is_some())
            + self.top.len()
            + self.afs.iter().map(|(_, l)| l.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What `vtysh -f /dev/stdin` is sent (it starts in configure mode). Holds passwords:
    /// written to vtysh's standard input, never put on a command line.
    pub fn script(&self) -> String {
        let mut out = String::new();
        if let Some(a) = &self.remove_instance {
            out.push_str(&format!("no router bgp {a}\n"));
        }
        if self.top.is_empty() && self.afs.is_empty() {
            return out;
        }
        out.push_str(&format!("router bgp {}\n", self.local_as));
        for l in &self.top {
            out.push_str(&format!(" {l}\n"));
        }
        for (af, lines) in &self.afs {
            out.push_str(&format!(" address-family {af}\n"));
            for l in lines {
                out.push_str(&format!("  {l}\n"));
            }
            out.push_str(" exit-address-family\n");
        }
        out.push_str("exit\n");
        out
    }
}

/// Hides what follows `password ` on each line.
pub fn redact(text: &str) -> String {
    crate::render::redact(text)
}

impl fmt::Display for BgpCommands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return Ok(());
        }
        writeln!(f, "configure terminal")?;
        f.write_str(&redact(&self.script()))?;
        writeln!(f, "end")
    }
}

impl fmt::Debug for BgpCommands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BgpCommands({:?})", redact(&self.script()))
    }
}

/// Keys of lines that hold one value: a change is a plain set.
fn key_of(line: &str) -> Option<String> {
    let t: Vec<&str> = line.split_whitespace().collect();
    match t.as_slice() {
        ["bgp", "router-id", _] => Some("bgp router-id".into()),
        ["neighbor", a, k @ ("remote-as" | "password" | "ebgp-multihop"), ..] => {
            Some(format!("neighbor {a} {k}"))
        }
        ["neighbor", a, "timers", "connect", _] => Some(format!("neighbor {a} timers connect")),
        _ => None,
    }
}

fn neighbor_of(line: &str) -> Option<&str> {
    let mut t = line.split_whitespace();
    (t.next() == Some("neighbor")).then(|| t.next()).flatten()
}

fn negate(line: &str) -> String {
    match line.strip_prefix("no ") {
        Some(rest) => rest.to_string(),
        None => format!("no {line}"),
    }
}

/// Lines of `have` to negate and lines of `want` to send, skipping removed neighbors.
fn diff(have: &[String], want: &[String], gone: &BTreeSet<String>) -> Vec<String> {
    let want_keys: BTreeSet<String> = want.iter().filter_map(|l| key_of(l)).collect();
    let mut out: Vec<String> = have
        .iter()
        .filter(|l| !want.contains(l))
        .filter(|l| !neighbor_of(l).is_some_and(|n| gone.contains(n)))
        .filter(|l| !key_of(l).is_some_and(|k| want_keys.contains(&k)))
        .map(|l| negate(l))
        .collect();
    out.extend(want.iter().filter(|l| !have.contains(l)).cloned());
    out
}

/// What must be sent so that FRR, whose running config is `running`, holds the `router bgp`
/// block `desired` (empty: no BGP).
pub fn plan(running: &str, desired: &str) -> BgpCommands {
    let have = parse_block(running);
    let want = parse_block(desired);
    let mut out = BgpCommands::default();
    let have = match (have, &want) {
        (None, None) => return out,
        (Some(h), None) => {
            out.remove_instance = Some(h.local_as);
            return out;
        }
        (Some(h), Some(w)) if h.local_as != w.local_as => {
            out.remove_instance = Some(h.local_as);
            BgpBlock::default()
        }
        (h, Some(_)) => h.unwrap_or_default(),
    };
    let want = want.unwrap_or_default();
    out.local_as = want.local_as.clone();
    let peers = |b: &BgpBlock| -> BTreeSet<String> {
        b.top
            .iter()
            .filter(|l| l.contains(" remote-as "))
            .filter_map(|l| neighbor_of(l).map(str::to_string))
            .collect()
    };
    let gone: BTreeSet<String> = peers(&have).difference(&peers(&want)).cloned().collect();
    out.top = gone.iter().map(|n| format!("no neighbor {n}")).collect();
    out.top.extend(diff(&have.top, &want.top, &gone));
    let afs: BTreeSet<&String> = have.afs.keys().chain(want.afs.keys()).collect();
    for af in afs {
        let empty = Vec::new();
        let lines = diff(
            have.afs.get(af).unwrap_or(&empty),
            want.afs.get(af).unwrap_or(&empty),
            &gone,
        );
        if !lines.is_empty() {
            out.afs.push((af.clone(), lines));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::bgp_block;

    fn section(json: &str) -> crate::bgp::BgpSection {
        serde_json::from_str(json).unwrap()
    }

    const TWO: &str = r#"{"local_as":65000,"router_id":"192.0.2.1","networks":["10.1.1.0/24"],
        "neighbors":[{"address":"192.0.2.2","remote_as":65101},{"address":"192.0.2.6","remote_as":65102,"password":"old-pw"}]}"#;

    fn running(s: &str) -> String {
        // As FRR prints it: other daemons' blocks around the BGP block.
        format!(
            "Building configuration...\n!\nfrr version 8.4.4\n!\ninterface eth3\n ip ospf area 0.0.0.0\nexit\n!\n{}!\nrouter ospf\n ospf router-id 172.16.0.1\nexit\n!\nend\n",
            bgp_block(&section(s))
        )
    }

    #[test]
    fn same_block_needs_nothing_and_ospf_lines_are_not_read() {
        let p = plan(&running(TWO), &bgp_block(&section(TWO)));
        assert!(p.is_empty(), "{p:?}");
        let b = parse_block(&running(TWO)).unwrap();
        assert!(b.top.iter().all(|l| !l.contains("ospf")), "{b:?}");
        assert_eq!(b.afs["ipv4 unicast"].len(), 3);
    }

    #[test]
    fn changing_one_neighbor_touches_only_its_lines() {
        let changed = TWO.replace("old-pw", "new-pw").replace(
            r#""password":"new-pw""#,
            r#""password":"new-pw","ebgp_multihop":3"#,
        );
        let p = plan(&running(TWO), &bgp_block(&section(&changed)));
        assert_eq!(
            p.top,
            [
                "neighbor 192.0.2.6 password new-pw",
                "neighbor 192.0.2.6 ebgp-multihop 3"
            ]
        );
        assert!(p.afs.is_empty() && p.remove_instance.is_none());
        let shown = p.to_string();
        assert!(
            !shown.contains("new-pw") && !format!("{p:?}").contains("new-pw"),
            "{shown}"
        );
        assert!(p.script().contains(" neighbor 192.0.2.6 password new-pw\n"));
        // Multihop removed again: negated, not re-set.
        let p = plan(
            &bgp_block(&section(&changed)),
            &bgp_block(&section(&changed.replace(r#","ebgp_multihop":3"#, ""))),
        );
        assert_eq!(p.top, ["no neighbor 192.0.2.6 ebgp-multihop 3"]);
    }

    #[test]
    fn removing_a_neighbor_is_one_line_and_a_new_network_one_more() {
        let one = r#"{"local_as":65000,"router_id":"192.0.2.1","networks":["10.1.1.0/24","10.1.2.0/24"],
            "neighbors":[{"address":"192.0.2.2","remote_as":65101}]}"#;
        let p = plan(&running(TWO), &bgp_block(&section(one)));
        assert_eq!(p.top, ["no neighbor 192.0.2.6"]);
        assert_eq!(
            p.afs,
            [(
                "ipv4 unicast".to_string(),
                vec!["network 10.1.2.0/24".to_string()]
            )]
        );
        assert_eq!(
            p.script(),
            "router bgp 65000\n no neighbor 192.0.2.6\n address-family ipv4 unicast\n  network 10.1.2.0/24\n exit-address-family\nexit\n"
        );
    }

    #[test]
    fn new_instance_removal_and_as_change() {
        let p = plan(
            "Building configuration...\n!\nend\n",
            &bgp_block(&section(TWO)),
        );
        assert!(p.remove_instance.is_none());
        assert_eq!(p.top[0], "bgp router-id 192.0.2.1");
        assert_eq!(p.top[1], "no bgp ebgp-requires-policy");
        let p = plan(&running(TWO), "");
        assert_eq!(p.script(), "no router bgp 65000\n");
        let p = plan(
            &running(TWO),
            &bgp_block(&section(&TWO.replace("65000", "65009"))),
        );
        assert_eq!(p.remove_instance.as_deref(), Some("65000"));
        assert!(p
            .script()
            .starts_with("no router bgp 65000\nrouter bgp 65009\n bgp router-id"));
    }
}

#[cfg(test)]
mod coexistence {
    /// OSPF's plan, from a running config holding BGP, never touches `router bgp`; BGP's plan
    /// from one holding OSPF never touches OSPF's lines (see the tests above).
    #[test]
    fn ospf_plan_ignores_bgp_lines() {
        let running = "!\nrouter bgp 65000\n neighbor 192.0.2.2 remote-as 65101\n neighbor 192.0.2.2 password s3cret\nexit\n!\nrouter ospf\n ospf router-id 172.16.0.1\nexit\n!\nend\n";
        let p = crate::apply::plan(running, Some("172.16.0.1".parse().unwrap()), "");
        let sent = p.script();
        assert_eq!(sent, "no router ospf\n", "{sent}");
        let p = crate::apply::plan(
            running,
            None,
            "router ospf\n ospf router-id 172.16.0.1\nexit\n",
        );
        assert!(p.is_empty(), "{p:?}");
    }
}
