//! The OSPF lab shared by `ospf_changes` and `ospf_fault`: the agent's router vr1 (FRR driven
//! only by the agent) and a peer vr3 (FRR configured by the test) joined by two point-to-point
//! links, eth3 (172.16.0.0/30, md5 authentication) and eth4 (172.16.1.0/30); vr1's passive LAN
//! eth0 is 10.1.1.0/24, vr3's is 10.3.0.0/24. Hello 1 s, dead 4 s.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::time::Duration;

use vr_tests::peers::Frr;
use vr_tests::{veth, wait_for, AgentProc, Netns};

/// The md5 key both ends use on eth3: it must never show up on a command line or in a log.
pub const MD5_KEY: &str = "k3y-on-stdin";

pub const PEER: &str = "interface eth3\n ip ospf area 0\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n ip ospf authentication message-digest\n ip ospf message-digest-key 1 md5 k3y-on-stdin\n!\ninterface eth4\n ip ospf area 0.0.0.1\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n!\ninterface lan0\n ip ospf area 0\n ip ospf passive\n!\nrouter ospf\n ospf router-id 172.16.0.2\n timers throttle spf 0 50 1000\n timers throttle lsa all 0\n timers lsa min-arrival 0\n!\n";

/// How the agent's push puts interfaces into areas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `network PREFIX area A` statements.
    Networks,
    /// `ip ospf area A` on each interface.
    InterfaceAreas,
}

/// The agent's OSPF push: `eth4_area` None takes eth4 out of OSPF.
#[derive(Debug, Clone, Copy)]
pub struct Push {
    pub router_id: Ipv4Addr,
    pub style: Style,
    pub eth4_area: Option<Ipv4Addr>,
    pub eth0_cost: u16,
}

impl Default for Push {
    fn default() -> Self {
        Push {
            router_id: Ipv4Addr::new(172, 16, 0, 1),
            style: Style::Networks,
            eth4_area: Some(Ipv4Addr::new(0, 0, 0, 1)),
            eth0_cost: 5,
        }
    }
}

impl Push {
    pub fn json(&self) -> String {
        let ifarea = |a: &str| {
            if self.style == Style::InterfaceAreas {
                format!(r#","area":"{a}""#)
            } else {
                String::new()
            }
        };
        let mut interfaces = vec![
            format!(
                r#"{{"device":"eth3","network_type":"point-to-point","hello_interval":1,"dead_interval":4,"cost":10,"authentication":{{"type":"md5","key_id":1,"password":"{MD5_KEY}"}}{}}}"#,
                ifarea("0.0.0.0")
            ),
            format!(
                r#"{{"device":"eth0","passive":true,"cost":{}{}}}"#,
                self.eth0_cost,
                ifarea("0.0.0.0")
            ),
        ];
        let mut networks = vec![
            r#"{"prefix":"172.16.0.0/30","area":"0.0.0.0"}"#.to_string(),
            r#"{"prefix":"10.1.1.0/24","area":"0.0.0.0"}"#.to_string(),
        ];
        let mut areas = vec![r#"{"id":"0.0.0.0"}"#.to_string()];
        if let Some(a) = self.eth4_area {
            interfaces.push(format!(
                r#"{{"device":"eth4","network_type":"point-to-point","hello_interval":1,"dead_interval":4{}}}"#,
                ifarea(&a.to_string())
            ));
            networks.push(format!(r#"{{"prefix":"172.16.1.0/30","area":"{a}"}}"#));
            areas.push(format!(r#"{{"id":"{a}"}}"#));
        }
        if self.style == Style::InterfaceAreas {
            networks.clear();
        }
        format!(
            r#"{{"schema":1,
            "interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]}},
                          {{"device":"eth3","role":"private_gateway","addresses":["172.16.0.1/30"]}},
                          {{"device":"eth4","role":"private_gateway","addresses":["172.16.1.1/30"]}}],
            "ospf":{{"router_id":"{}","areas":[{}],"interfaces":[{}],"networks":[{}],
              "timers":{{"spf":{{"delay_ms":0,"initial_hold_ms":50,"max_hold_ms":1000}},"lsa_throttle_ms":0,"lsa_min_arrival_ms":0}}}}}}"#,
            self.router_id,
            areas.join(","),
            interfaces.join(","),
            networks.join(",")
        )
    }
}

/// The two routers, their FRRs and the agent (with a `vtysh` wrapper on its PATH that logs
/// every command line vtysh was started with).
#[derive(Debug)]
pub struct Lab {
    pub vr1: Netns,
    pub vr3: Netns,
    pub frr1: Frr,
    pub frr3: Frr,
    pub agent: AgentProc,
    pub dir: tempfile::TempDir,
    /// Every argv the agent started vtysh with, one per line.
    pub argv_log: std::path::PathBuf,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        Lab::with_agent_args(tag, &[])
    }

    /// Like [`new`](Self::new), the agent started with `args` as well.
    pub fn with_agent_args(tag: &str, args: &[&str]) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("vr-ospf")
            .tempdir()
            .unwrap();
        let mut vr1 = Netns::new(&format!("{tag}1"));
        let mut vr3 = Netns::new(&format!("{tag}3"));
        veth(&vr1, "eth3", &vr3, "eth3");
        veth(&vr1, "eth4", &vr3, "eth4");
        vr1.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ]);
        vr3.ip(&[
            "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
        ]);
        for (ns, devs) in [(&vr1, ["eth0", "eth0p"]), (&vr3, ["lan0", "lan0p"])] {
            for d in devs {
                ns.ip(&["link", "set", d, "up"]);
            }
        }
        vr1.ip(&["addr", "replace", "10.1.1.1/24", "dev", "eth0"]);
        vr1.ip(&["addr", "replace", "172.16.0.1/30", "dev", "eth3"]);
        vr1.ip(&["addr", "replace", "172.16.1.1/30", "dev", "eth4"]);
        vr3.ip(&["addr", "add", "172.16.0.2/30", "dev", "eth3"]);
        vr3.ip(&["addr", "add", "172.16.1.2/30", "dev", "eth4"]);
        vr3.ip(&["addr", "add", "10.3.0.1/24", "dev", "lan0"]);
        let frr1 = Frr::start(&mut vr1, &dir.path().join("vr1"), "vr1", "");
        let frr3 = Frr::start(&mut vr3, &dir.path().join("vr3"), "vr3", PEER);
        // vtysh wrapper: logs its argv, then runs the real vtysh with the same stdin.
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let argv_log = dir.path().join("vtysh-argv.log");
        let wrapper = bin.join("vtysh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nexec /usr/bin/vtysh \"$@\"\n",
                argv_log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut agent = AgentProc::new(Some(&vr1.name));
        agent.extra_args = vec![
            "--frr-vty-dir".into(),
            frr1.dir.display().to_string(),
            "--frr-config".into(),
            frr1.dir.join("frr.conf").display().to_string(),
        ];
        agent.extra_args.extend(args.iter().map(|a| a.to_string()));
        let path = std::env::var("PATH").unwrap_or_default();
        agent
            .env
            .push(("PATH".into(), format!("{}:{path}", bin.display())));
        agent.start();
        Lab {
            vr1,
            vr3,
            frr1,
            frr3,
            agent,
            dir,
            argv_log,
        }
    }

    /// Applies `p`; returns the ospf outcome (status, changes).
    pub fn apply(&self, name: &str, p: &Push) -> (String, u64) {
        let (code, r) = self.agent.apply_text(name, &p.json());
        assert_eq!(code, 0, "{name}: {r}");
        ospf_outcome(&r)
    }

    /// vr1's running config.
    pub fn running(&self) -> String {
        self.frr1.vtysh(&["show running-config"])
    }
}

/// (status, changes) of the ospf concern in an apply result.
pub fn ospf_outcome(r: &serde_json::Value) -> (String, u64) {
    let o = r[0]["outcomes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["concern"] == "ospf")
        .cloned()
        .unwrap_or_default();
    (
        o["status"].as_str().unwrap_or("").to_string(),
        o["changes"].as_u64().unwrap_or(0),
    )
}

/// The Full neighbor `frr` sees on `iface` (its name starts the `ifaceName`): (router id,
/// uptime ms).
pub fn full_on(frr: &Frr, iface: &str) -> Option<(String, u64)> {
    let j = frr.vtysh(&["show ip ospf neighbor json"]);
    let v: serde_json::Value = serde_json::from_str(&j).ok()?;
    for (rid, list) in v["neighbors"].as_object()? {
        for n in list.as_array()? {
            let on = n["ifaceName"].as_str().unwrap_or("");
            if on.split(':').next() == Some(iface)
                && n["nbrState"].as_str().unwrap_or("").starts_with("Full")
            {
                return Some((rid.clone(), n["upTimeInMsec"].as_u64().unwrap_or(0)));
            }
        }
    }
    None
}

/// Waits up to `secs` for a Full neighbor with router id `rid` on `iface`; its uptime.
pub fn wait_full(frr: &Frr, iface: &str, rid: &str, secs: u64) -> Option<u64> {
    let mut up = None;
    wait_for(Duration::from_secs(secs), || {
        up = full_on(frr, iface)
            .filter(|(r, _)| r == rid)
            .map(|(_, u)| u);
        up.is_some()
    });
    up
}

/// Whether `ns` has a kernel route to `prefix` learned by OSPF.
pub fn ospf_route(ns: &Netns, prefix: &str) -> bool {
    ns.ip(&["route", "show", prefix]).contains("proto ospf")
}
