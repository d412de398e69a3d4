//! `vr-agent show ospf`: neighbors and OSPF routes as FRR reports them now (every vtysh call
//! with the concern's deadline, so a hung FRR is reported, not waited on), and
//! `vr-agent show ospf --dialect frr|quagga`: the committed OSPF state rendered as FRR's
//! `frr.conf` or as Quagga's `zebra.conf` + `ospfd.conf` (keys redacted) for an operator who
//! moves the configuration elsewhere.

use std::path::Path;

use serde_json::{json, Value};

use crate::concern::ospf::vtysh::Vtysh;
use crate::state::DesiredState;

/// OSPF neighbors and routes from FRR (`vtysh ... json`), typed.
pub async fn live_view(vty_dir: Option<&Path>) -> (String, Value) {
    let vtysh = Vtysh::new(vty_dir.map(Path::to_path_buf));
    let neighbors = match vtysh.show(&["show ip ospf neighbor json"]).await {
        Ok(t) => vr_ospf::status::parse_neighbors(&t).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    // FRR that did not answer the first call is not given a second deadline to miss.
    let routes = match &neighbors {
        Err(e) => Err(e.clone()),
        Ok(_) => match vtysh.show(&["show ip ospf route json"]).await {
            Ok(t) => vr_ospf::status::parse_routes(&t).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
    };
    let mut text = String::new();
    match &neighbors {
        Ok(ns) => {
            text.push_str(&format!(
                "{:<16} {:<12} {:<24} {:>10}\n",
                "NEIGHBOR", "STATE", "INTERFACE", "UP (s)"
            ));
            for n in ns {
                text.push_str(&format!(
                    "{:<16} {:<12} {:<24} {:>10}\n",
                    n.router_id,
                    n.state,
                    n.interface,
                    n.up_msec
                        .map(|m| (m / 1000).to_string())
                        .unwrap_or_else(|| "-".into())
                ));
            }
        }
        Err(e) => text.push_str(&format!("FRR: {e}\n")),
    }
    if let Ok(rs) = &routes {
        text.push_str(&format!(
            "\n{:<20} {:<6} {:>6}  NEXT HOPS\n",
            "PREFIX", "TYPE", "COST"
        ));
        for r in rs {
            text.push_str(&format!(
                "{:<20} {:<6} {:>6}  {}\n",
                r.prefix,
                r.route_type,
                r.cost.unwrap_or(0),
                r.nexthops.join(", ")
            ));
        }
    }
    let body = match (neighbors, routes) {
        (Ok(n), Ok(r)) => json!({"neighbors": n, "routes": r}),
        (n, r) => json!({"error": n.err().or(r.err())}),
    };
    (text, body)
}

/// The committed OSPF state in `dialect` (`frr` or `quagga`), keys redacted.
pub fn export(state: &DesiredState, dialect: &str, hostname: &str) -> (String, Value) {
    let ospf = state.ospf.as_ref();
    if dialect == "quagga" {
        let addresses_of = |dev: &str| {
            state
                .interfaces
                .iter()
                .filter(|i| i.device == dev)
                .flat_map(|i| i.addresses.iter().copied())
                .collect()
        };
        let e = vr_ospf::export::quagga_export(ospf, hostname, &addresses_of);
        let body =
            json!({"dialect": "quagga", "zebra.conf": e.zebra_conf, "ospfd.conf": e.ospfd_conf});
        (e.to_string(), body)
    } else {
        let text = vr_ospf::render::redact(&vr_ospf::render::frr_conf(ospf, hostname));
        let body = json!({"dialect": "frr", "frr.conf": text});
        (text, body)
    }
}

/// This machine's host name (what the agent's FRR config carries).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "router".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_uses_the_state_addresses_and_never_prints_keys() {
        let state: DesiredState = serde_json::from_value(json!({
            "interfaces": [{"device": "eth3", "role": "private_gateway", "addresses": ["172.16.0.1/30"]}],
            "ospf": {"router_id": "172.16.0.1",
                     "interfaces": [{"device": "eth3", "area": "0.0.0.0",
                                     "authentication": {"type": "md5", "key_id": 1, "password": "exp-key"}}]}
        }))
        .unwrap();
        let (text, body) = export(&state, "quagga", "r1");
        assert!(
            text.contains(" network 172.16.0.0/30 area 0.0.0.0\n"),
            "{text}"
        );
        assert!(!text.contains("exp-key") && !body.to_string().contains("exp-key"));
        let (text, _) = export(&state, "frr", "r1");
        assert!(
            text.contains(" ip ospf area 0.0.0.0\n") && !text.contains("exp-key"),
            "{text}"
        );
    }
}
