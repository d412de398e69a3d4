//! Packet and byte counters per firewall rule (ingress per public address, egress per guest
//! network, VPC network ACLs, and the IPv6 firewall), read from the `counter` every such rule
//! already carries in the agent's tables `ip vr` and `ip6 vr`.
//!
//! Why these counters rather than a counting table like `vr_rule_stats`: firewall rules are
//! ordered (the first match decides), so which rule matched is known only inside the rule
//! chain. A set of per-rule elements would need a second classification of every packet that
//! repeats the rules' order: a cost per rule, or an interval set of concatenations (pipapo),
//! seconds to load at 10 000 elements. The packet path is already flat where it can be: one
//! verdict-map lookup per packet to the chain of its public address, guest network or tier,
//! then that chain's own rules; a rule's counter is updated only when that rule matches, so
//! counting adds nothing to a packet that another rule decides. Named counter objects would
//! cost the same on the packet path and need NEWOBJ support in the netlink backend for
//! nothing more.
//!
//! What a rule counts: the packets it decides. Established and related traffic is accepted
//! before the rule chains, so an accept rule counts the first packet of each connection it
//! admits (its bytes are those packets' bytes), a drop rule every packet it drops.
//!
//! Reading: `nft -t list table` (terse: no set elements, so 10 000 port forwards in the maps
//! are not listed), in the text form, because nft 1.0.6's JSON drops the chain comments that
//! name the public address, network or tier of a chain. A rule's series is built afresh at
//! every read, so a revoked rule's series disappears. Any change of the firewall rules
//! replaces the table atomically, which starts every rule's counter again from 0: Prometheus
//! treats that as a counter reset (`rate()` and `increase()` handle it).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::concern::nft_script::nft;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// `ip` or `ip6`.
    pub family: String,
    /// `ingress`, `egress`, `acl_in` (into a tier), `acl_out` (from a tier).
    pub kind: String,
    /// The public address (ingress), guest network (egress) or tier device (ACL); `guest`
    /// for the IPv6 ingress chain, which is one for all guest prefixes.
    pub scope: String,
    /// The rule's id (ACL: its number); `default` for a chain's closing verdict.
    pub rule: String,
}

/// One rule's counter as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCount {
    pub labels: RuleLabels,
    pub packets: u64,
    pub bytes: u64,
}

/// At most this many rules are read per table (memory stays bounded whatever nft prints).
pub const MAX_RULES: usize = 200_000;

/// The kind of a chain the agent builds for firewall rules, by its name.
fn kind_of(family: &str, chain: &str) -> Option<&'static str> {
    let indexed = |prefix: &str| {
        chain
            .strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if indexed("fw_in_") || (family == "ip6" && chain == "ingress") {
        Some("ingress")
    } else if indexed("egress_") {
        Some("egress")
    } else if indexed("acl_in_") {
        Some("acl_in")
    } else if indexed("acl_out_") {
        Some("acl_out")
    } else {
        None
    }
}

/// The text of a trailing `comment "..."` of `line`, and the line before it.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    match line.rfind(" comment \"").or_else(|| {
        line.starts_with("comment \"")
            .then_some(0)
            .filter(|_| line.ends_with('"'))
    }) {
        Some(i) => {
            let rest = &line[i..];
            let text = rest
                .trim_start()
                .strip_prefix("comment \"")
                .and_then(|t| t.strip_suffix('"'));
            (&line[..i], text)
        }
        None => (line, None),
    }
}

/// `counter packets N bytes M` in a rule.
fn counter(rule: &str) -> Option<(u64, u64)> {
    let rest = &rule[rule.find("counter packets ")? + "counter packets ".len()..];
    let mut w = rest.split_whitespace();
    let packets = w.next()?.parse().ok()?;
    (w.next()? == "bytes").then_some(())?;
    let bytes = w.next()?.parse().ok()?;
    Some((packets, bytes))
}

/// The rule label of a rule comment: `rule 11` -> `11`, `number 3` -> `3`, none -> `default`.
fn rule_label(comment: Option<&str>) -> String {
    match comment {
        None => "default".into(),
        Some(c) => c
            .strip_prefix("rule ")
            .or_else(|| c.strip_prefix("number "))
            .unwrap_or(c)
            .to_string(),
    }
}

/// Parses `nft -t list table FAMILY vr` (text): the counters of the firewall chains' rules.
pub fn parse(family: &str, text: &str) -> Vec<RuleCount> {
    let mut out = Vec::new();
    // (kind, scope) of the firewall chain being read, None outside one.
    let mut chain: Option<(&'static str, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("chain ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            chain = kind_of(family, name).map(|k| (k, String::new()));
            if family == "ip6" && name == "ingress" {
                chain = chain.map(|(k, _)| (k, "guest".into()));
            }
            continue;
        }
        if line == "}" {
            chain = None;
            continue;
        }
        let Some((kind, scope)) = chain.as_mut() else {
            continue;
        };
        if line.starts_with("comment \"") {
            // `ingress 192.0.2.10`, `egress 10.1.0.0/24`, `acl in eth3`: the last word.
            if let (_, Some(c)) = split_comment(line) {
                if scope.is_empty() {
                    *scope = c.rsplit(' ').next().unwrap_or("").to_string();
                }
            }
            continue;
        }
        let (body, comment) = split_comment(line);
        let Some((packets, bytes)) = counter(body) else {
            continue;
        };
        if out.len() >= MAX_RULES {
            break;
        }
        out.push(RuleCount {
            labels: RuleLabels {
                family: family.into(),
                kind: (*kind).into(),
                scope: scope.clone(),
                rule: rule_label(comment),
            },
            packets,
            bytes,
        });
    }
    out
}

/// Reads both tables (`None`: neither exists or nft cannot be run).
pub fn read() -> Option<Vec<RuleCount>> {
    let mut all: Option<Vec<RuleCount>> = None;
    for family in ["ip", "ip6"] {
        match nft(&["-t", "list", "table", family, vr_nat::build::TABLE]) {
            Ok(out) if out.status.success() => all
                .get_or_insert_with(Vec::new)
                .extend(parse(family, &String::from_utf8_lossy(&out.stdout))),
            Ok(_) => {}
            Err(e) => tracing::debug!("metrics: firewall counters: {e}"),
        }
    }
    all
}

/// Adds the per-rule families to `reg`.
pub fn register(reg: &mut Registry, rules: &[RuleCount]) {
    let packets = Family::<RuleLabels, Counter>::default();
    let bytes = Family::<RuleLabels, Counter>::default();
    for r in rules {
        // Two rules of one chain cannot share a label set unless a push reused an id; their
        // counts then add up rather than one hiding the other.
        packets.get_or_create(&r.labels).inc_by(r.packets);
        bytes.get_or_create(&r.labels).inc_by(r.bytes);
    }
    reg.register(
        "firewall_rule_packets",
        "Packets a firewall rule (ingress, egress, ACL) matched; default: the chain's closing verdict",
        packets,
    );
    reg.register(
        "firewall_rule_bytes",
        "Bytes a firewall rule (ingress, egress, ACL) matched; default: the chain's closing verdict",
        bytes,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `nft -t list table ip vr` prints for a firewall (cut to the chains that matter).
    const LISTING: &str = r#"table ip vr {
	set fwi_11_src {
		type ipv4_addr
		flags interval
	}
	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		counter packets 5 bytes 300 drop
	}
	chain fw_in_0 {
		comment "ingress 192.0.2.10"
		ip saddr @fwi_11_src tcp dport 20-22 counter packets 3 bytes 180 accept comment "rule 11"
		meta l4proto gre counter packets 0 bytes 0 accept comment "rule 14"
		counter packets 7 bytes 420 drop
	}
	chain egress_0 {
		comment "egress 10.1.0.0/24"
		tcp dport 80 counter packets 1 bytes 60 accept comment "rule 31"
		counter packets 0 bytes 0 drop
	}
	chain acl_out_1 {
		comment "acl out eth4"
		ip daddr @acl1_out0 udp dport 53 counter packets 2 bytes 120 drop comment "number 1"
	}
}
"#;

    #[test]
    fn rules_of_firewall_chains_with_their_scope() {
        let r = parse("ip", LISTING);
        let got: Vec<(String, String, String, u64, u64)> = r
            .iter()
            .map(|c| {
                (
                    c.labels.kind.clone(),
                    c.labels.scope.clone(),
                    c.labels.rule.clone(),
                    c.packets,
                    c.bytes,
                )
            })
            .collect();
        let want = |k: &str, s: &str, r: &str, p, b| (k.into(), s.into(), r.into(), p, b);
        assert_eq!(
            got,
            vec![
                want("ingress", "192.0.2.10", "11", 3, 180),
                want("ingress", "192.0.2.10", "14", 0, 0),
                want("ingress", "192.0.2.10", "default", 7, 420),
                want("egress", "10.1.0.0/24", "31", 1, 60),
                want("egress", "10.1.0.0/24", "default", 0, 0),
                want("acl_out", "eth4", "1", 2, 120),
            ]
        );
    }

    #[test]
    fn ipv6_ingress_is_one_chain_for_the_guests() {
        let text = "table ip6 vr {\n\tchain ingress {\n\t\tcomment \"new inbound to guest prefixes\"\n\t\tip6 daddr @in_31_dst tcp dport 80 counter packets 4 bytes 320 accept comment \"rule 31\"\n\t}\n}\n";
        let r = parse("ip6", text);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].labels.scope.as_str(), r[0].labels.rule.as_str()),
            ("guest", "31")
        );
    }

    #[test]
    fn registered_series_carry_the_labels() {
        let mut reg = Registry::with_prefix("vr");
        register(&mut reg, &parse("ip", LISTING));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(
            text.contains(r#"vr_firewall_rule_bytes_total{family="ip",kind="ingress",scope="192.0.2.10",rule="11"} 180"#),
            "{text}"
        );
    }
}
