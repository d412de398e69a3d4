//! OSPF and BGP neighbours by state, as FRR reports them through vtysh (`show ip ospf neighbor
//! json`, `show bgp summary json`, each under vtysh's read deadline, the child killed past
//! it). Read only when the state configures OSPF or BGP.
//!
//! One gauge per state seen; the state that means "working" (`Full`, `Established`) is always
//! present, so an adjacency that is lost shows 0 rather than a series that vanishes.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::concern::ospf::vtysh::Vtysh;
use crate::concern::ConcernError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// Neighbours per state.
pub type ByState = BTreeMap<String, u64>;

/// Pure: OSPF neighbours per state (`Full/DR` counts as `Full`: the role is not the state).
pub fn ospf_states(json: &str) -> Result<ByState, String> {
    let list = vr_ospf::status::parse_neighbors(json)
        .map_err(|e| format!("show ip ospf neighbor json: {e}"))?;
    let mut out = ByState::from([("Full".to_string(), 0)]);
    for n in list {
        let state = n.state.split('/').next().unwrap_or("").to_string();
        *out.entry(state).or_default() += 1;
    }
    Ok(out)
}

/// Pure: BGP neighbours per state, each neighbour once (FRR lists it per address family).
pub fn bgp_states(json: &str) -> Result<ByState, String> {
    let peers = vr_ospf::bgp::status::parse_summary(json)
        .map_err(|e| format!("show bgp summary json: {e}"))?;
    let mut by_peer = BTreeMap::new();
    for p in peers {
        by_peer.entry(p.address).or_insert(p.state);
    }
    let mut out = ByState::from([("Established".to_string(), 0)]);
    for state in by_peer.into_values() {
        *out.entry(state).or_default() += 1;
    }
    Ok(out)
}

pub async fn read_ospf(vty: &Vtysh) -> Result<ByState, ConcernError> {
    let json = vty.show(&["show ip ospf neighbor json"]).await?;
    ospf_states(&json).map_err(ConcernError::Failed)
}

pub async fn read_bgp(vty: &Vtysh) -> Result<ByState, ConcernError> {
    let json = vty.show(&["show bgp summary json"]).await?;
    bgp_states(&json).map_err(ConcernError::Failed)
}

/// Adds `vr_<name>{state}` to `reg`.
pub fn register(reg: &mut Registry, name: &str, help: &str, states: &ByState) {
    let f = Family::<StateLabel, Gauge>::default();
    for (state, n) in states {
        f.get_or_create(&StateLabel {
            state: state.clone(),
        })
        .set(*n as i64);
    }
    reg.register(name, help, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ospf_neighbours_by_state_without_the_role() {
        let j = r#"{"neighbors":{"172.16.0.2":[{"nbrState":"Full/-","ifaceName":"eth3:172.16.0.1"}],
                    "172.16.1.2":[{"nbrState":"Full/DR"}],"172.16.2.2":[{"nbrState":"Init/DROther"}]}}"#;
        let s = ospf_states(j).unwrap();
        assert_eq!(s.get("Full"), Some(&2));
        assert_eq!(s.get("Init"), Some(&1));
        assert_eq!(ospf_states("{}").unwrap().get("Full"), Some(&0));
    }

    #[test]
    fn bgp_neighbours_once_each() {
        let j = r#"{"ipv4Unicast":{"peers":{"192.0.2.2":{"state":"Established"},"192.0.2.3":{"state":"Active"}}},
                   "ipv6Unicast":{"peers":{"192.0.2.2":{"state":"Established"}}}}"#;
        let s = bgp_states(j).unwrap();
        assert_eq!(s.get("Established"), Some(&1));
        assert_eq!(s.get("Active"), Some(&1));
        let mut reg = Registry::with_prefix("vr");
        register(&mut reg, "bgp_neighbors", "BGP neighbours by state", &s);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(
            text.contains(r#"vr_bgp_neighbors{state="Established"} 1"#),
            "{text}"
        );
    }
}
