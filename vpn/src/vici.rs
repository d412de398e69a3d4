//! VICI messages as owned, ordered data: built purely from the model, serialized by `rsvici`
//! for charon, printed (`Display`) like swanctl.conf with the PSK shown as `<redacted>`.

use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::model::{DpdAction, IkeVersion, SiteToSite};
use crate::policy::proposals;
use crate::Secret;

/// One value of a VICI message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Value(String),
    /// Sent in clear to charon, printed as `<redacted>`.
    Secret(Secret),
    List(Vec<String>),
    Section(Section),
}

/// An ordered VICI section (key order is kept for readable output and stable goldens).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section(pub Vec<(String, Item)>);

impl Section {
    pub(crate) fn kv(mut self, k: &str, v: impl Into<String>) -> Self {
        self.0.push((k.to_string(), Item::Value(v.into())));
        self
    }
    pub(crate) fn list(mut self, k: &str, v: Vec<String>) -> Self {
        self.0.push((k.to_string(), Item::List(v)));
        self
    }
    pub(crate) fn sub(mut self, k: &str, s: Section) -> Self {
        self.0.push((k.to_string(), Item::Section(s)));
        self
    }
}

impl Serialize for Section {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Item::Value(v) => s.serialize_str(v),
            Item::Secret(v) => s.serialize_str(v.expose()),
            Item::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for x in l {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Item::Section(sec) => sec.serialize(s),
        }
    }
}

/// A VICI command and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub command: &'static str,
    pub body: Section,
}

fn write_section(f: &mut fmt::Formatter<'_>, s: &Section, indent: usize) -> fmt::Result {
    let pad = "  ".repeat(indent);
    for (k, v) in &s.0 {
        match v {
            Item::Value(x) => writeln!(f, "{pad}{k} = {x}")?,
            Item::Secret(_) => writeln!(f, "{pad}{k} = <redacted>")?,
            Item::List(l) => writeln!(f, "{pad}{k} = {}", l.join(","))?,
            Item::Section(sub) => {
                writeln!(f, "{pad}{k} {{")?;
                write_section(f, sub, indent + 1)?;
                writeln!(f, "{pad}}}")?;
            }
        }
    }
    Ok(())
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {{", self.command)?;
        write_section(f, &self.body, 1)?;
        writeln!(f, "}}")
    }
}

/// The connection's stable name: `s2s-<peer gateway>`.
pub fn conn_name(c: &SiteToSite) -> String {
    format!("s2s-{}", c.peer_gateway)
}

/// Child SA names: one (`<conn>-0`) or, with split connections, one per peer CIDR.
pub fn child_names(c: &SiteToSite) -> Vec<String> {
    let n = if c.split_connections {
        c.peer_cidrs.len()
    } else {
        1
    };
    (0..n).map(|i| format!("{}-{i}", conn_name(c))).collect()
}

/// `load-shared`: the PSK, owned by both gateways' identities (their addresses).
pub fn load_shared(c: &SiteToSite) -> Message {
    let mut body = Section::default().kv("id", conn_name(c)).kv("type", "IKE");
    body.0.push(("data".into(), Item::Secret(c.psk.clone())));
    let body = body.list(
        "owners",
        vec![c.local_public_ip.to_string(), c.peer_gateway.to_string()],
    );
    Message {
        command: "load-shared",
        body,
    }
}

pub fn unload_shared(name: &str) -> Message {
    Message {
        command: "unload-shared",
        body: Section::default().kv("id", name),
    }
}

/// `load-conn` for one site-to-site connection. Policies are validated before planning;
/// an invalid one here yields an empty proposal list (charon then refuses the connection).
pub fn load_conn(c: &SiteToSite) -> Message {
    let name = conn_name(c);
    let version = match c.ike_version {
        IkeVersion::Ike => "0",
        IkeVersion::Ikev1 => "1",
        IkeVersion::Ikev2 => "2",
    };
    let mut conn = Section::default()
        .kv("version", version)
        .list("local_addrs", vec![c.local_public_ip.to_string()])
        .list("remote_addrs", vec![c.peer_gateway.to_string()])
        .list("proposals", proposals(&c.ike_policy).unwrap_or_default())
        .kv("encap", if c.force_encap { "yes" } else { "no" })
        .kv("mobike", "no");
    // IKEv1 has no rekeying of the IKE SA: it re-authenticates.
    conn = match c.ike_version {
        IkeVersion::Ikev1 => conn.kv("reauth_time", format!("{}s", c.ike_lifetime)),
        _ => conn.kv("rekey_time", format!("{}s", c.ike_lifetime)),
    };
    if let Some(d) = &c.dpd {
        conn = conn
            .kv("dpd_delay", format!("{}s", d.delay))
            .kv("dpd_timeout", format!("{}s", d.timeout));
    }
    conn = conn
        .sub(
            "local",
            Section::default()
                .kv("auth", "psk")
                .kv("id", c.local_public_ip.to_string()),
        )
        .sub(
            "remote",
            Section::default()
                .kv("auth", "psk")
                .kv("id", c.peer_gateway.to_string()),
        );
    let esp = proposals(&c.esp_policy).unwrap_or_default();
    let dpd_action = match (c.passive, c.dpd.map(|d| d.action)) {
        (true, _) | (false, None) => "clear",
        (false, Some(DpdAction::Restart)) => "restart",
        (false, Some(DpdAction::Clear)) => "clear",
        (false, Some(DpdAction::Trap)) => "trap",
    };
    let locals: Vec<String> = c.local_cidrs.iter().map(|n| n.to_string()).collect();
    let remotes: Vec<Vec<String>> = if c.split_connections {
        c.peer_cidrs.iter().map(|n| vec![n.to_string()]).collect()
    } else {
        vec![c.peer_cidrs.iter().map(|n| n.to_string()).collect()]
    };
    let mut children = Section::default();
    for (child, remote) in child_names(c).into_iter().zip(remotes) {
        let sec = Section::default()
            .list("local_ts", locals.clone())
            .list("remote_ts", remote)
            .list("esp_proposals", esp.clone())
            .kv("rekey_time", format!("{}s", c.esp_lifetime))
            .kv("dpd_action", dpd_action)
            // Trap policies never trigger with kernel-libipsec: the agent initiates explicitly.
            .kv("start_action", "none")
            .kv("close_action", if c.passive { "none" } else { "start" });
        children = children.sub(&child, sec);
    }
    conn = conn.sub("children", children);
    Message {
        command: "load-conn",
        body: Section::default().sub(&name, conn),
    }
}

pub fn unload_conn(name: &str) -> Message {
    Message {
        command: "unload-conn",
        body: Section::default().kv("name", name),
    }
}

/// `terminate` of every SA of a connection, without waiting for the peer.
pub fn terminate(name: &str) -> Message {
    Message {
        command: "terminate",
        body: Section::default()
            .kv("ike", name)
            .kv("force", "yes")
            .kv("timeout", "-1"),
    }
}

/// `initiate` of one child (and its IKE SA), waiting up to `timeout_ms` for the result.
pub fn initiate(child: &str, ike: &str, timeout_ms: u32) -> Message {
    Message {
        command: "initiate",
        body: Section::default()
            .kv("child", child)
            .kv("ike", ike)
            .kv("timeout", timeout_ms.to_string())
            .kv("init-limits", "no"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(json: serde_json::Value) -> SiteToSite {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn display_never_shows_the_psk() {
        let c = conn(
            serde_json::json!({"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],"peer_gateway":"203.0.113.5",
            "peer_cidrs":["10.2.0.0/24"],"psk":"do-not-print","ike_policy":"aes128-sha1;modp1536","esp_policy":"aes128-sha1"}),
        );
        let m = load_shared(&c);
        assert!(!m.to_string().contains("do-not-print"));
        assert!(m.to_string().contains("data = <redacted>"));
        assert!(!format!("{m:?}").contains("do-not-print"));
        assert_eq!(child_names(&c), ["s2s-203.0.113.5-0"]);
    }
}
