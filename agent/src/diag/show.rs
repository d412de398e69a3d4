//! `vr-agent show nat|firewall|acl|conntrack|vpn` (ospf: [`super::ospf`]): what the kernel and
//! the daemons hold now, read with their own tools (run without a shell), as text and as JSON.

use std::process::Command;

use serde_json::{json, Value};

/// The agent's nftables table (family, name).
pub const TABLE: (&str, &str) = ("ip", vr_nat::build::TABLE);

/// Which maps, sets and chains of the agent's table belong to each view.
pub fn nft_objects(view: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match view {
        "nat" => (
            &[
                "pf_exact",
                "pf_port",
                "pf_addr",
                "static_dnat",
                "static_snat",
                "src_nat",
                "pub_marks",
            ],
            &["pre_nat", "out_nat", "post_nat", "pre_mark", "out_mark"],
        ),
        "firewall" => (
            &[
                "fw_in",
                "egress",
                "public_devs",
                "guest_devs",
                "control_devs",
                "router_addrs",
                "vpn_endpoints",
                "vpn_traffic",
            ],
            &["pre_filter", "input", "forward"],
        ),
        // Each tier has its own chains `acl_in_<n>` / `acl_out_<n>` and CIDR sets `acl<n>_...`.
        _ => (&["acl*"], &["acl_in_*", "acl_out_*", "forward"]),
    }
}

/// Output of a tool, or why it could not run.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    match crate::process::output_within(
        Command::new(program).args(args),
        crate::process::TOOL_DEADLINE,
    ) {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

/// nat / firewall / acl: the relevant maps (with their elements) and chains (with counters).
pub fn nft_view(view: &str) -> (String, Value) {
    let (family, table) = TABLE;
    let (maps, chains) = nft_objects(view);
    let listing = match run("nft", &["-j", "list", "table", family, table]) {
        Ok(t) => t,
        Err(e) => {
            return (
                format!("{e}\n(is the agent's table loaded? see `vr-agent check`)\n"),
                json!({"error": e}),
            )
        }
    };
    let all: Value = serde_json::from_str(&listing).unwrap_or(Value::Null);
    let mut objects = Vec::new();
    for item in all["nftables"].as_array().into_iter().flatten() {
        let obj = item.as_object().and_then(|o| o.iter().next());
        if let Some((kind, body)) = obj {
            let name = body["name"].as_str().unwrap_or("");
            let wanted = match kind.as_str() {
                "set" | "map" => chain_wanted(maps, name),
                "chain" => chain_wanted(chains, name),
                "rule" => body["chain"]
                    .as_str()
                    .is_some_and(|c| chain_wanted(chains, c)),
                _ => false,
            };
            if wanted {
                objects.push(item.clone());
            }
        }
    }
    let mut text = String::new();
    for o in &objects {
        for kind in ["map", "set"] {
            if let Some(m) = o[kind]["name"].as_str() {
                if let Ok(t) = run("nft", &["list", kind, family, table, m]) {
                    text.push_str(&t);
                }
            }
        }
    }
    let chain_names: Vec<String> = objects
        .iter()
        .filter_map(|o| o["chain"]["name"].as_str().map(str::to_string))
        .collect();
    for c in &chain_names {
        if let Ok(t) = run("nft", &["list", "chain", family, table, c]) {
            text.push_str(&t);
        }
    }
    (
        text,
        json!({"table": format!("{family} {table}"), "objects": objects}),
    )
}

/// Whether object `name` is in `patterns` (a trailing `*` matches a prefix).
fn chain_wanted(patterns: &[&str], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => *p == name,
    })
}

/// One conntrack entry as `conntrack -L -o extended` prints it, parsed.
pub fn parse_conntrack_line(line: &str) -> Option<Value> {
    let mut it = line.split_whitespace();
    let _l3 = it.next()?;
    let _l3num = it.next()?;
    let proto = it.next()?.to_string();
    let _pnum = it.next()?;
    let ttl: u64 = it.next()?.parse().ok()?;
    let mut state = None;
    let (mut orig, mut reply) = (serde_json::Map::new(), serde_json::Map::new());
    let mut flags = Vec::new();
    let mut mark = None;
    for tok in it {
        if let Some((k, v)) = tok.split_once('=') {
            let target = if orig.contains_key(k) {
                &mut reply
            } else {
                &mut orig
            };
            match k {
                "src" | "dst" | "sport" | "dport" | "type" | "code" | "id" => {
                    target.insert(k.to_string(), Value::String(v.to_string()));
                }
                "mark" => mark = v.parse::<u64>().ok(),
                _ => {}
            }
        } else if tok.starts_with('[') {
            flags.push(tok.trim_matches(|c| c == '[' || c == ']').to_string());
        } else if tok.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            state = Some(tok.to_string());
        }
    }
    Some(
        json!({"protocol": proto, "ttl": ttl, "state": state, "original": orig, "reply": reply, "flags": flags, "mark": mark}),
    )
}

/// Conntrack entries filtered by address, port and protocol, with counts by state.
pub fn conntrack_view(
    address: Option<&str>,
    port: Option<u16>,
    protocol: Option<&str>,
) -> (String, Value) {
    let out = match run("conntrack", &["-L", "-o", "extended"]) {
        Ok(t) => t,
        Err(e) => return (format!("{e}\n"), json!({"error": e})),
    };
    let port_s = port.map(|p| p.to_string());
    let mut entries = Vec::new();
    let mut text = String::new();
    let mut by_state = std::collections::BTreeMap::<String, u64>::new();
    for line in out.lines() {
        let Some(e) = parse_conntrack_line(line) else {
            continue;
        };
        let addr_ok = address.is_none_or(|a| {
            ["original", "reply"]
                .iter()
                .any(|d| ["src", "dst"].iter().any(|k| e[d][k].as_str() == Some(a)))
        });
        let port_ok = port_s.as_deref().is_none_or(|p| {
            ["original", "reply"].iter().any(|d| {
                ["sport", "dport"]
                    .iter()
                    .any(|k| e[d][k].as_str() == Some(p))
            })
        });
        let proto_ok = protocol.is_none_or(|p| e["protocol"].as_str() == Some(p));
        if addr_ok && port_ok && proto_ok {
            let st = e["state"].as_str().unwrap_or("-").to_string();
            *by_state.entry(st).or_default() += 1;
            text.push_str(line);
            text.push('\n');
            entries.push(e);
        }
    }
    text.push_str(&format!("\n{} entries", entries.len()));
    for (s, n) in &by_state {
        text.push_str(&format!(", {s} {n}"));
    }
    text.push('\n');
    (
        text,
        json!({"count": entries.len(), "by_state": by_state, "entries": entries}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_extended_line_parses() {
        let l = "ipv4     2 tcp      6 431999 ESTABLISHED src=192.0.2.100 dst=192.0.2.11 sport=40000 dport=8080 src=10.1.1.10 dst=192.0.2.100 sport=80 dport=40000 [ASSURED] mark=102 use=1";
        let e = parse_conntrack_line(l).unwrap();
        assert_eq!(e["protocol"], "tcp");
        assert_eq!(e["state"], "ESTABLISHED");
        assert_eq!(e["original"]["dport"], "8080");
        assert_eq!(e["reply"]["src"], "10.1.1.10");
        assert_eq!(e["mark"], 102);
        assert_eq!(e["flags"][0], "ASSURED");
    }

    #[test]
    fn views_pick_disjoint_objects() {
        let (m, c) = nft_objects("nat");
        assert!(m.contains(&"pf_port") && c.contains(&"pre_nat"));
        let (m, c) = nft_objects("acl");
        assert!(
            chain_wanted(m, "acl0_in0")
                && chain_wanted(c, "acl_in_3")
                && !chain_wanted(c, "pre_nat")
        );
    }
}
