//! Site-to-site VPN test topology: routers on one switch, each with a host behind it, its
//! own charon (kernel-libipsec) and its own agent (shared by the VPN tests).

use crate::peers::Charon;
use crate::{veth, AgentProc, Netns};

/// One site: router, host, charon and agent.
#[derive(Debug)]
pub struct Site {
    pub router: Netns,
    pub host: Netns,
    pub charon: Option<Charon>,
    pub agent: AgentProc,
    pub public: &'static str,
    pub lan: &'static str,
}

/// One site-to-site tunnel of a native push.
pub fn tunnel(
    local: &str,
    lan: &str,
    peer: &str,
    peer_lan: &str,
    psk: &str,
    passive: bool,
    esp_life: u32,
) -> String {
    format!(
        r#"{{"local_public_ip":"{local}","local_cidrs":["{lan}"],"peer_gateway":"{peer}","peer_cidrs":["{peer_lan}"],"psk":"{psk}",
        "ike_policy":"aes128-sha256;modp2048","esp_policy":"aes128-sha256","ike_version":"ikev2","esp_lifetime":{esp_life},
        "dpd":{{"delay":5,"timeout":20}},"passive":{passive}}}"#
    )
}

/// A native push for `site`: its two NICs, source NAT of its LAN, and `tunnels`.
pub fn push(site: &Site, tunnels: &[String]) -> String {
    format!(
        r#"{{"schema":1,"interfaces":[{{"device":"lan0","role":"guest","addresses":["{}"]}},{{"device":"wan0","role":"public","addresses":["{}/24"]}}],
        "nat":{{"source_nat":[{{"device":"wan0","public_ip":"{}","source_cidrs":["{}"]}}]}},"vpn":{{"site_to_site":[{}]}}}}"#,
        site.lan.replace(".0/24", ".1/24"),
        site.public,
        site.public,
        site.lan,
        tunnels.join(",")
    )
}

/// A router namespace (wan0 on the switch, lan0 to its host) with its host, charon (unless
/// `with_charon` is false) and a running agent driving that charon.
pub fn site(
    sw: &Netns,
    dir: &std::path::Path,
    n: u8,
    public: &'static str,
    lan: &'static str,
    with_charon: bool,
) -> Site {
    let mut router = Netns::new(&format!("vr{n}v"));
    let host = Netns::new(&format!("h{n}v"));
    veth(&router, "wan0", sw, &format!("p{n}"));
    sw.ip(&["link", "set", &format!("p{n}"), "master", "br0"]);
    veth(&router, "lan0", &host, "eth0");
    router.ip(&["addr", "replace", &format!("{public}/24"), "dev", "wan0"]);
    router.ip(&[
        "addr",
        "replace",
        &lan.replace(".0/24", ".1/24"),
        "dev",
        "lan0",
    ]);
    host.ip(&[
        "addr",
        "add",
        &lan.replace(".0/24", ".10/24"),
        "dev",
        "eth0",
    ]);
    host.ip(&[
        "route",
        "add",
        "default",
        "via",
        &lan.replace(".0/24", ".1"),
    ]);
    let charon_dir = dir.join(format!("charon{n}"));
    let charon = with_charon.then(|| Charon::start(&mut router, &charon_dir));
    let mut agent = AgentProc::new(Some(&router.name));
    agent.extra_args = vec![
        "--vici-socket".into(),
        charon_dir.join("charon.vici").display().to_string(),
    ];
    agent.start();
    Site {
        router,
        host,
        charon,
        agent,
        public,
        lan,
    }
}

/// `vr-agent show vpn --json`.
pub fn show_vpn(agent: &AgentProc) -> serde_json::Value {
    let out = agent.cli(&["show", "vpn", "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| serde_json::json!({"raw": String::from_utf8_lossy(&out.stdout)}))
}

/// One connection of a `show vpn` answer.
pub fn conn<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v["connections"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

/// A temp dir and a switch namespace with bridge br0 the sites' wan0 links join.
pub fn topology(tag: &str) -> (tempfile::TempDir, Netns) {
    let dir = tempfile::Builder::new().prefix(tag).tempdir().unwrap();
    let sw = Netns::new("swv");
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.ip(&["link", "set", "br0", "up"]);
    (dir, sw)
}

/// Pushes `a`'s NICs, source NAT and one tunnel towards `b` (`passive`: wait for `b` to
/// initiate); returns `apply`'s exit code and results.
pub fn push_tunnel(a: &Site, b: &Site, psk: &str, passive: bool) -> (i32, serde_json::Value) {
    let t = tunnel(a.public, a.lan, b.public, b.lan, psk, passive, 3600);
    a.agent.apply_text("vpn.json", &push(a, &[t]))
}
