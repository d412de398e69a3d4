//! `netusage.sh` / `vpc_netusage.sh` (contract §10): the options as upstream reads them, the
//! byte counters behind `-g`, and its `sent:recv:sent:recv:` answer.
//!
//! The counters live in a small table of their own, `inet vr_stats`, that no rule push
//! touches (the agent replaces only its `vr` table): named counter objects, referenced by the
//! rules of one regular chain `count` that the forward, input and output hooks jump to (just
//! before the filter hook, as upstream's `NETWORK_STATS` sits at the front of `FORWARD`,
//! `INPUT` and `OUTPUT`). Rewriting the rules (a NIC added) flushes the chain, never the
//! counters, so reads never reset and the counts go on through agent restarts and pushes.
//! Four rules per public NIC: packet cost grows with public NICs, never with rules or VMs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub const TABLE: &str = "vr_stats";

/// What one call asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `-c`: make sure the counters exist (router start, NIC plugged).
    Create,
    /// `-g`: print the counters.
    Get,
    /// `-r`: accepted; counters are never reset (the MS copes with either, and a reset
    /// would lose what was counted since the last read).
    Reset,
    /// `-a`, `-d`, `-n`, `-v` alone: no-ops upstream too.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub action: Action,
    /// `-l <publicIp>`: the public NIC holding it.
    pub public_ip: Option<String>,
}

/// A usage error (exit 2, as upstream's getopts usage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Usage {
    /// option {0} needs a value
    #[error("option {0} needs a value")]
    Value(String),
    /// unknown option {0:?}
    #[error("unknown option {0:?}")]
    Unknown(String),
    /// -l {0:?} is not an IPv4 address
    #[error("-l {0:?} is not an IPv4 address")]
    Address(String),
}

/// Reads the options (`vpc`: `vpc_netusage.sh`, which also takes `-v <cidr>` and `-n`). As
/// with upstream's `getopts`, the last action given wins and `-g` beats the no-ops.
pub fn parse_args(args: &[String], vpc: bool) -> Result<Args, Usage> {
    let joined = args.join(" ");
    let mut words = joined.split_whitespace();
    let mut out = Args {
        action: Action::Nothing,
        public_ip: None,
    };
    while let Some(w) = words.next() {
        let mut value = |o: &str| {
            words
                .next()
                .map(str::to_string)
                .ok_or_else(|| Usage::Value(o.into()))
        };
        match w {
            "-c" => {
                if out.action != Action::Get {
                    out.action = Action::Create
                }
            }
            "-g" => out.action = Action::Get,
            "-r" => {
                if out.action != Action::Get {
                    out.action = Action::Reset
                }
            }
            "-l" => {
                let ip = value("-l")?;
                if ip.parse::<std::net::Ipv4Addr>().is_err() {
                    return Err(Usage::Address(ip.chars().take(40).collect()));
                }
                out.public_ip = Some(ip);
            }
            "-a" | "-d" if !vpc => {
                value(w)?;
            }
            "-v" if vpc => {
                value(w)?;
            }
            "-d" | "-n" if vpc => {}
            other => return Err(Usage::Unknown(other.chars().take(32).collect())),
        }
    }
    Ok(out)
}

/// A NIC as the counters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub device: String,
    pub public: bool,
    pub guest: bool,
    /// Addresses without prefix length.
    pub addresses: Vec<String>,
}

/// Which traffic of a public NIC is guest traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guests {
    /// Isolated router: what comes from or goes to these NICs.
    Nics(Vec<String>),
    /// VPC: what comes from or goes to this CIDR.
    Cidr(String),
}

/// The counters wanted: four per public NIC, in NIC order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub public: Vec<Nic>,
    pub guests: Guests,
}

impl Spec {
    pub fn new(nics: &[Nic], vpc_cidr: Option<&str>) -> Spec {
        Spec {
            public: nics.iter().filter(|n| n.public).cloned().collect(),
            guests: match vpc_cidr {
                Some(c) => Guests::Cidr(c.to_string()),
                None => Guests::Nics(
                    nics.iter()
                        .filter(|n| n.guest)
                        .map(|n| n.device.clone())
                        .collect(),
                ),
            },
        }
    }

    /// Counter names in answer order (sent, recv, sent, recv) for `-g [-l ip]`. An address no
    /// public NIC holds gives none (upstream: no chain, no output, the MS reads 0/0).
    pub fn counters_for(&self, public_ip: Option<&str>) -> Vec<String> {
        self.public
            .iter()
            .filter(|n| public_ip.is_none_or(|ip| n.addresses.iter().any(|a| a == ip)))
            .flat_map(|n| counter_names(&n.device))
            .collect()
    }

    fn all_counters(&self) -> BTreeSet<String> {
        self.public
            .iter()
            .flat_map(|n| counter_names(&n.device))
            .collect()
    }
}

/// The four counters of one public NIC: forwarded sent/received, then TCP to/from the router
/// itself (and other non-guest traffic) sent/received.
pub fn counter_names(device: &str) -> [String; 4] {
    let d: String = device
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    [
        format!("{d}_sent_fwd"),
        format!("{d}_recv_fwd"),
        format!("{d}_sent_tcp"),
        format!("{d}_recv_tcp"),
    ]
}

fn quoted_set(devs: &[String]) -> String {
    // As `nft` prints it back: a one-element set is the element itself.
    let q: Vec<String> = devs.iter().map(|d| format!("\"{d}\"")).collect();
    if q.len() == 1 {
        return q[0].clone();
    }
    format!("{{ {} }}", q.join(", "))
}

/// The rules of chain `count`, in order.
pub fn rules(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    for nic in &spec.public {
        let p = format!("\"{}\"", nic.device);
        let [sf, rf, st, rt] = counter_names(&nic.device);
        match &spec.guests {
            Guests::Nics(g) if g.is_empty() => {
                out.push(format!(
                    "oifname {p} meta l4proto tcp counter name \"{st}\""
                ));
                out.push(format!(
                    "iifname {p} meta l4proto tcp counter name \"{rt}\""
                ));
            }
            Guests::Nics(g) => {
                let g = quoted_set(g);
                out.push(format!("iifname {g} oifname {p} counter name \"{sf}\""));
                out.push(format!("iifname {p} oifname {g} counter name \"{rf}\""));
                out.push(format!(
                    "oifname {p} iifname != {g} meta l4proto tcp counter name \"{st}\""
                ));
                out.push(format!(
                    "iifname {p} oifname != {g} meta l4proto tcp counter name \"{rt}\""
                ));
            }
            Guests::Cidr(c) => {
                out.push(format!("ip saddr {c} oifname {p} counter name \"{sf}\""));
                out.push(format!("ip daddr {c} iifname {p} counter name \"{rf}\""));
                out.push(format!(
                    "ip saddr != {c} oifname {p} meta l4proto tcp counter name \"{st}\""
                ));
                out.push(format!(
                    "ip daddr != {c} iifname {p} meta l4proto tcp counter name \"{rt}\""
                ));
            }
        }
    }
    out
}

/// What to do to the kernel: one `nft -f` transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Counters to create (existing ones keep their counts).
    pub create: Vec<String>,
    /// Counters of public NICs that are gone.
    pub delete: Vec<String>,
    /// The rules of chain `count`.
    pub rules: Vec<String>,
    /// The rules already there (from a read-back); the plan rewrites them only when they
    /// differ or the table is missing.
    pub rewrite: bool,
}

/// Plans from what the kernel holds (`None`: no table) to `spec`.
pub fn plan(current: Option<&Current>, spec: &Spec) -> Plan {
    let want = spec.all_counters();
    let have: BTreeSet<String> = current
        .map(|c| c.counters.keys().cloned().collect())
        .unwrap_or_default();
    let rules = rules(spec);
    Plan {
        create: want.difference(&have).cloned().collect(),
        delete: have.difference(&want).cloned().collect(),
        rewrite: current.is_none_or(|c| c.rules != rules || !c.hooked),
        rules,
    }
}

impl Plan {
    pub fn changes(&self) -> usize {
        self.create.len() + self.delete.len() + usize::from(self.rewrite)
    }
}

/// The `nft -f` script of a plan (empty when nothing changes).
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes() == 0 {
            return Ok(());
        }
        writeln!(f, "add table inet {TABLE}")?;
        for c in &self.create {
            writeln!(f, "add counter inet {TABLE} {c}")?;
        }
        if self.rewrite {
            writeln!(f, "add chain inet {TABLE} count")?;
            writeln!(f, "flush chain inet {TABLE} count")?;
            for r in &self.rules {
                writeln!(f, "add rule inet {TABLE} count {r}")?;
            }
            for hook in ["forward", "input", "output"] {
                writeln!(
                    f,
                    "add chain inet {TABLE} {hook} {{ type filter hook {hook} priority filter - 10; policy accept; }}"
                )?;
                writeln!(f, "flush chain inet {TABLE} {hook}")?;
                writeln!(f, "add rule inet {TABLE} {hook} jump count")?;
            }
        }
        for c in &self.delete {
            writeln!(f, "delete counter inet {TABLE} {c}")?;
        }
        Ok(())
    }
}

/// What the kernel holds, read back from `nft -j list table inet vr_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// Counter name -> bytes.
    pub counters: BTreeMap<String, u64>,
    /// The rules of chain `count`, as `nft` prints them.
    pub rules: Vec<String>,
    /// Whether the three hook chains jump to `count`.
    pub hooked: bool,
}

/// Reads `nft -j list table inet vr_stats` (the counters and whether it is wired) and
/// `nft list chain inet vr_stats count` text (the rules, as `nft` prints them).
pub fn parse_current(json: &str, count_chain: &str) -> Result<Current, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("nft -j: {e}"))?;
    let mut cur = Current::default();
    let mut jumps = 0;
    for item in v["nftables"].as_array().into_iter().flatten() {
        if let Some(c) = item.get("counter") {
            if let (Some(n), Some(b)) = (c["name"].as_str(), c["bytes"].as_u64()) {
                cur.counters.insert(n.to_string(), b);
            }
        }
        if let Some(r) = item.get("rule") {
            let jump = r["expr"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|x| x["jump"]["target"].as_str() == Some("count"))
            });
            if jump && ["forward", "input", "output"].contains(&r["chain"].as_str().unwrap_or("")) {
                jumps += 1;
            }
        }
    }
    cur.hooked = jumps == 3;
    cur.rules = count_chain
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("counter name"))
        .map(str::to_string)
        .collect();
    Ok(cur)
}

/// The `-g` answer: each counter's bytes followed by `:`, no newline.
pub fn render_get(bytes: &[u64]) -> String {
    bytes.iter().map(|b| format!("{b}:")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port of `LCR.getNetworkStats` / `getVPCNetworkStats`: (bytes sent, bytes received).
    fn java_parse(result: &str) -> (i64, i64) {
        let mut split: Vec<&str> = result.split(':').collect();
        // Java's String.split drops trailing empty strings.
        while split.len() > 1 && split.last() == Some(&"") {
            split.pop();
        }
        let mut stats = (0i64, 0i64);
        let mut i = 0;
        while i + 1 < split.len() {
            stats.0 += split[i].parse::<i64>().unwrap();
            stats.1 += split[i + 1].parse::<i64>().unwrap();
            i += 2;
        }
        stats
    }

    fn nic(dev: &str, public: bool, guest: bool, addrs: &[&str]) -> Nic {
        Nic {
            device: dev.into(),
            public,
            guest,
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn isolated() -> Spec {
        Spec::new(
            &[
                nic("eth0", false, true, &["10.1.1.1"]),
                nic("eth1", false, false, &["169.254.0.5"]),
                nic("eth2", true, false, &["192.0.2.10", "192.0.2.11"]),
                nic("eth3", true, false, &["198.51.100.10"]),
            ],
            None,
        )
    }

    #[test]
    fn options_as_upstream() {
        let a = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(parse_args(&a("-g"), false).unwrap().action, Action::Get);
        let g = parse_args(&a("-g -l 192.0.2.10"), false).unwrap();
        assert_eq!(g.public_ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(parse_args(&a("-c"), false).unwrap().action, Action::Create);
        assert_eq!(
            parse_args(&a("-a eth3"), false).unwrap().action,
            Action::Nothing
        );
        assert_eq!(
            parse_args(&a("-l 192.0.2.10 -c -v 10.0.0.0/16"), true)
                .unwrap()
                .action,
            Action::Create
        );
        assert_eq!(
            parse_args(&a("-l 192.0.2.10 -n"), true).unwrap().action,
            Action::Nothing
        );
        assert_eq!(parse_args(&a("-r"), true).unwrap().action, Action::Reset);
        assert!(parse_args(&a("-g -l"), false).is_err());
        assert!(parse_args(&a("-g -l 1.2.3.4;reboot"), false).is_err());
        assert!(parse_args(&a("-v 10.0.0.0/8"), false).is_err());
        assert!(parse_args(&a("-x"), true).is_err());
    }

    #[test]
    fn golden_scripts_isolated_and_vpc() {
        let p = plan(None, &isolated());
        super::super::golden("vr_stats_isolated.nft", &p.to_string());
        let vpc = Spec::new(
            &[
                nic("eth1", true, false, &["192.0.2.20"]),
                nic("eth2", false, true, &["10.0.1.1"]),
            ],
            Some("10.0.0.0/16"),
        );
        super::super::golden("vr_stats_vpc.nft", &plan(None, &vpc).to_string());
        let none = Spec::new(&[nic("eth2", true, false, &["192.0.2.10"])], None);
        assert_eq!(rules(&none).len(), 2);
        assert_eq!(none.counters_for(None).len(), 4);
    }

    #[test]
    fn replanning_keeps_counters_and_touches_only_what_changed() {
        let spec = isolated();
        let rules = rules(&spec);
        let cur = Current {
            counters: spec
                .all_counters()
                .into_iter()
                .map(|c| (c, 7))
                .chain([("old_sent_fwd".to_string(), 1)])
                .collect(),
            rules: rules.clone(),
            hooked: true,
        };
        let p = plan(Some(&cur), &spec);
        assert_eq!(
            (p.create.len(), p.delete.clone(), p.rewrite),
            (0, vec!["old_sent_fwd".to_string()], false)
        );
        let mut synced = cur.clone();
        synced.counters.remove("old_sent_fwd");
        assert_eq!(plan(Some(&synced), &spec).changes(), 0);
        assert_eq!(plan(Some(&synced), &spec).to_string(), "");
        // A deleted hook chain is put back; the counters are not recreated.
        synced.hooked = false;
        let p = plan(Some(&synced), &spec);
        assert!(p.rewrite && p.create.is_empty());
        assert!(!p.to_string().contains("add counter"));
    }

    #[test]
    fn get_answers_through_the_java_parse() {
        let spec = isolated();
        assert_eq!(spec.counters_for(None).len(), 8);
        assert_eq!(
            spec.counters_for(Some("198.51.100.10")),
            counter_names("eth3")
        );
        assert!(spec.counters_for(Some("192.0.2.1")).is_empty());
        // Exact address, never upstream's substring match (10.0.0.1 is not 110.0.0.1).
        let s = Spec::new(&[nic("eth2", true, false, &["110.0.0.1"])], None);
        assert!(s.counters_for(Some("10.0.0.1")).is_empty());
        let out = render_get(&[1_048_576, 2_097_152, 4096, 8192]);
        assert_eq!(out, "1048576:2097152:4096:8192:");
        assert_eq!(java_parse(&out), (1_048_576 + 4096, 2_097_152 + 8192));
        assert_eq!(render_get(&[]), "");
    }

    #[test]
    fn current_from_nft_json() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
          {"table": {"family": "inet", "name": "vr_stats", "handle": 1}},
          {"counter": {"family": "inet", "name": "eth2_sent_fwd", "table": "vr_stats", "handle": 2, "packets": 4, "bytes": 336}},
          {"rule": {"family": "inet", "table": "vr_stats", "chain": "forward", "handle": 9, "expr": [{"jump": {"target": "count"}}]}},
          {"rule": {"family": "inet", "table": "vr_stats", "chain": "input", "handle": 10, "expr": [{"jump": {"target": "count"}}]}},
          {"rule": {"family": "inet", "table": "vr_stats", "chain": "output", "handle": 11, "expr": [{"jump": {"target": "count"}}]}}]}"#;
        let chain = "table inet vr_stats {\n\tchain count {\n\t\toifname \"eth2\" counter name \"eth2_sent_tcp\"\n\t}\n}\n";
        let c = parse_current(json, chain).unwrap();
        assert_eq!(c.counters["eth2_sent_fwd"], 336);
        assert!(c.hooked);
        assert_eq!(c.rules, ["oifname \"eth2\" counter name \"eth2_sent_tcp\""]);
        assert!(parse_current("not json", "").is_err());
    }
}
