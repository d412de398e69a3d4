//! `vr-agent show bgp`: each BGP neighbor in each address family with its session state,
//! uptime and prefixes sent and received, from FRR's `show bgp summary json` (one vtysh call
//! with the concern's deadline: a hung bgpd is reported, not waited on). No password is ever
//! read here.

use std::path::Path;

use serde_json::{json, Value};

use crate::concern::ospf::vtysh::Vtysh;
use vr_ospf::bgp::status::{parse_summary, Peer};

/// The table an operator reads.
pub fn render(peers: &[Peer]) -> String {
    let mut text = format!(
        "{:<26} {:<12} {:>10} {:<12} {:>12} {:>6} {:>6} {:>5}\n",
        "NEIGHBOR", "FAMILY", "REMOTE AS", "STATE", "UP (s)", "SENT", "RCVD", "EST"
    );
    for p in peers {
        text.push_str(&format!(
            "{:<26} {:<12} {:>10} {:<12} {:>12} {:>6} {:>6} {:>5}\n",
            p.address,
            p.family,
            p.remote_as,
            p.state,
            if p.state == "Established" {
                (p.uptime_msec / 1000).to_string()
            } else {
                "-".into()
            },
            p.prefixes_sent,
            p.prefixes_received,
            p.established
        ));
    }
    text
}

/// Neighbors as FRR reports them now.
pub async fn live_view(vty_dir: Option<&Path>) -> (String, Value) {
    let vtysh = Vtysh::new(vty_dir.map(Path::to_path_buf));
    let peers = match vtysh.show(&["show bgp summary json"]).await {
        Ok(t) => parse_summary(&t).map_err(|e| format!("show bgp summary json: {e}")),
        Err(e) => Err(e.to_string()),
    };
    match peers {
        Ok(ps) => (render(&ps), json!({ "peers": ps })),
        Err(e) => (format!("FRR: {e}\n"), json!({ "error": e })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_golden_file() {
        let ps = parse_summary(
            r#"{"ipv4Unicast":{"peers":{"192.0.2.2":{"remoteAs":65101,"peerUptimeMsec":62000,"pfxRcd":1,"pfxSnt":2,"state":"Established","connectionsEstablished":1}}},
                "ipv6Unicast":{"peers":{"2001:db8:ff::2":{"remoteAs":65101,"state":"Active"}}}}"#,
        )
        .unwrap();
        assert_eq!(render(&ps), include_str!("golden/show_bgp.txt"));
    }
}
