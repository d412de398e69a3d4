//! Per-connection plan: `plan(applied, desired)` is pure. A connection whose settings (PSK
//! included) did not change is not in the plan, so its IKE and CHILD SAs keep running.

use std::fmt;

use crate::model::{SiteToSite, VpnSection};
use crate::vici::{child_names, conn_name};

/// What happens to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnOp {
    /// New: load its PSK and config; initiate it unless passive.
    Add(SiteToSite),
    /// Changed: terminate its SAs, reload, initiate unless passive.
    Change(SiteToSite),
    /// Removed: terminate its SAs, unload config and PSK.
    Remove(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpnPlan {
    pub ops: Vec<ConnOp>,
    /// Remote-access steps, run after the site-to-site ones.
    pub remote: Vec<crate::remote_plan::RaOp>,
}

impl VpnPlan {
    pub fn len(&self) -> usize {
        self.ops.len() + self.remote.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.remote.is_empty()
    }
}

pub fn plan(applied: &VpnSection, desired: &VpnSection) -> VpnPlan {
    let mut ops = Vec::new();
    for old in &applied.site_to_site {
        if !desired
            .site_to_site
            .iter()
            .any(|d| d.peer_gateway == old.peer_gateway)
        {
            ops.push(ConnOp::Remove(conn_name(old)));
        }
    }
    for new in &desired.site_to_site {
        match applied
            .site_to_site
            .iter()
            .find(|a| a.peer_gateway == new.peer_gateway)
        {
            None => ops.push(ConnOp::Add(new.clone())),
            Some(old) if old != new => ops.push(ConnOp::Change(new.clone())),
            Some(_) => {}
        }
    }
    VpnPlan {
        ops,
        remote: crate::remote_plan::plan_remote(applied, desired),
    }
}

/// swanctl-like lines; the PSK never appears.
impl fmt::Display for VpnPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.ops {
            let (c, verb) = match op {
                ConnOp::Remove(name) => {
                    writeln!(f, "swanctl --terminate --ike {name} --force")?;
                    writeln!(f, "swanctl --unload-conn {name}  # and its PSK")?;
                    continue;
                }
                ConnOp::Add(c) => (c, "load"),
                ConnOp::Change(c) => (c, "reload"),
            };
            let name = conn_name(c);
            if verb == "reload" {
                writeln!(f, "swanctl --terminate --ike {name} --force")?;
            }
            writeln!(f, "swanctl --load-shared {name}  # psk <redacted>")?;
            writeln!(
                f,
                "swanctl --load-conn {name}  # {} -> {}, {} -> {}",
                c.local_public_ip,
                c.peer_gateway,
                c.local_cidrs
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                c.peer_cidrs
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )?;
            if !c.passive {
                for child in child_names(c) {
                    writeln!(f, "swanctl --initiate --child {child} --ike {name}")?;
                }
            }
        }
        for op in &self.remote {
            fmt::Display::fmt(op, f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(conns: &[(&str, &str)]) -> VpnSection {
        let list: Vec<serde_json::Value> = conns
            .iter()
            .map(|(peer, psk)| {
                serde_json::json!({"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],"peer_gateway":peer,
                "peer_cidrs":["10.2.0.0/24"],"psk":psk,"ike_policy":"aes128-sha1;modp1536","esp_policy":"aes128-sha1"})
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "site_to_site": list })).unwrap()
    }

    #[test]
    fn unchanged_connections_are_not_touched() {
        let a = section(&[("203.0.113.5", "k1"), ("203.0.113.6", "k2")]);
        assert!(plan(&a, &a).is_empty());
        let b = section(&[("203.0.113.5", "k1"), ("203.0.113.6", "k2-new")]);
        let p = plan(&a, &b);
        assert_eq!(p.len(), 1);
        assert!(
            matches!(&p.ops[0], ConnOp::Change(c) if c.peer_gateway.to_string() == "203.0.113.6")
        );
        assert!(!p.to_string().contains("k2-new"), "{p}");
        let c = section(&[("203.0.113.5", "k1")]);
        assert_eq!(plan(&a, &c).ops, [ConnOp::Remove("s2s-203.0.113.6".into())]);
    }
}
