//! `vr-agent show interfaces|routes`: the kernel's links, addresses, routes and rules, each
//! marked `agent` when the committed state implies it (the agent owns it and will remove it
//! when a push revokes it) or `other` (left alone, whoever added it).

use serde_json::{json, Value};

use crate::net::{self, Snapshot, MAIN_TABLE};
use crate::state::DesiredState;

fn owner(owned: bool) -> &'static str {
    if owned {
        "agent"
    } else {
        "other"
    }
}

/// `ip addr`, one line per address, plus `--json`.
pub fn interfaces(state: &DesiredState, sys: &Snapshot) -> (String, Value) {
    let want = net::wanted(state, sys);
    let mut text = String::new();
    let mut links = Vec::new();
    for l in &sys.links {
        let mac = l.mac.map(|m| m.to_string()).unwrap_or_default();
        let up = if l.up { "UP" } else { "DOWN" };
        text.push_str(&format!("{:<10} {up:<5} mtu {:<5} {mac}\n", l.name, l.mtu));
        let mut addrs = Vec::new();
        for (_, a) in sys.addresses.iter().filter(|(i, _)| *i == l.index) {
            let o = owner(want.addresses.contains_key(&(l.name.clone(), *a)));
            text.push_str(&format!("    {:<20} {o}\n", a.to_string()));
            addrs.push(json!({"address": a.to_string(), "owner": o}));
        }
        links.push(json!({
            "name": l.name, "index": l.index, "mac": mac, "mtu": l.mtu, "up": l.up,
            "addresses": addrs,
        }));
    }
    for m in &want.missing_nics {
        text.push_str(&format!(
            "{m:<10} MISSING (named by the state, not on this system)\n"
        ));
    }
    (
        text,
        json!({"interfaces": links, "missing": want.missing_nics}),
    )
}

/// `ip route show table all` (agent-relevant tables) and `ip rule`, plus `--json`.
pub fn routes(state: &DesiredState, sys: &Snapshot) -> (String, Value) {
    let want = net::wanted(state, sys);
    let name_of = |i: Option<u32>| {
        i.and_then(|i| sys.links.iter().find(|l| l.index == i))
            .map(|l| l.name.clone())
    };
    let mut text = String::new();
    let mut routes = Vec::new();
    for r in &sys.routes {
        let owned = r.metric == 0
            && want.routes.get(&(r.table, r.destination)).is_some_and(|w| {
                w.gateway == r.gateway
                    && w.device
                        .as_ref()
                        .is_none_or(|d| Some(d) == name_of(r.oif).as_ref())
            });
        let dev = name_of(r.oif).unwrap_or_default();
        let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        let table = if r.table == MAIN_TABLE {
            String::new()
        } else {
            format!(" table {}", r.table)
        };
        let o = owner(owned);
        text.push_str(&format!("{}{via} dev {dev}{table}  [{o}]\n", r.destination));
        routes.push(json!({
            "table": r.table, "destination": r.destination.to_string(),
            "gateway": r.gateway, "device": dev, "owner": o,
        }));
    }
    text.push_str("# policy rules\n");
    let mut rules = Vec::new();
    for k in &sys.rules {
        let o = owner(want.rules.contains(k));
        text.push_str(&format!(
            "{}: fwmark {:#x} lookup {}  [{o}]\n",
            k.priority, k.fwmark, k.table
        ));
        rules.push(
            json!({"priority": k.priority, "fwmark": k.fwmark, "table": k.table, "owner": o}),
        );
    }
    (text, json!({"routes": routes, "rules": rules}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{SysLink, SysRoute};
    use crate::state::{Interface, InterfaceRole};

    #[test]
    fn marks_what_the_state_implies_as_the_agents() {
        let mut s = DesiredState {
            interfaces: vec![Interface {
                device: "eth2".into(),
                mac: None,
                role: InterfaceRole::Public,
                addresses: vec!["198.51.100.1/24".parse().unwrap()],
                gateway: Some("198.51.100.254".parse().unwrap()),
                mtu: None,
                addresses6: Vec::new(),
                gateway6: None,
            }],
            ..Default::default()
        };
        s.allocate_policy_indexes();
        let sys = Snapshot {
            links: vec![SysLink {
                index: 2,
                name: "eth2".into(),
                mac: None,
                mtu: 1500,
                up: true,
            }],
            addresses: [
                (2, "198.51.100.1/24".parse().unwrap()),
                (2, "198.51.100.77/24".parse().unwrap()),
            ]
            .into(),
            routes: vec![
                SysRoute {
                    table: MAIN_TABLE,
                    destination: "0.0.0.0/0".parse().unwrap(),
                    gateway: Some("198.51.100.254".parse().unwrap()),
                    oif: Some(2),
                    metric: 0,
                },
                SysRoute {
                    table: MAIN_TABLE,
                    destination: "10.77.0.0/16".parse().unwrap(),
                    gateway: Some("198.51.100.253".parse().unwrap()),
                    oif: Some(2),
                    metric: 0,
                },
            ],
            rules: Default::default(),
        };
        let (text, _) = interfaces(&s, &sys);
        assert!(text.contains("198.51.100.1/24      agent"), "{text}");
        assert!(text.contains("198.51.100.77/24     other"), "{text}");
        let (text, body) = routes(&s, &sys);
        assert!(
            text.contains("0.0.0.0/0 via 198.51.100.254 dev eth2  [agent]"),
            "{text}"
        );
        assert!(
            text.contains("10.77.0.0/16 via 198.51.100.253 dev eth2  [other]"),
            "{text}"
        );
        assert_eq!(body["routes"][1]["owner"], "other");
    }
}
