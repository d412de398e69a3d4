//! OSPF status as FRR reports it (`show ip ospf neighbor json`, `show ip ospf route json`),
//! deserialized into typed structs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One neighbor (FRR 8.4 JSON: `{"neighbors": {"<router-id>": [{...}]}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor {
    #[serde(default)]
    pub router_id: String,
    /// e.g. `Full/-`, `Full/DR`, `Init/DROther`.
    #[serde(default, rename(deserialize = "nbrState"))]
    pub state: String,
    #[serde(default, rename(deserialize = "ifaceName"))]
    pub interface: String,
    #[serde(default)]
    pub address: String,
    /// Milliseconds since the adjacency came up (FRR: `upTimeInMsec`).
    #[serde(default, rename(deserialize = "upTimeInMsec"))]
    pub up_msec: Option<u64>,
    #[serde(default, rename(deserialize = "upTime"))]
    pub up_time: Option<String>,
}

impl Neighbor {
    pub fn is_full(&self) -> bool {
        self.state.starts_with("Full")
    }
}

/// Parses `show ip ospf neighbor json`.
pub fn parse_neighbors(json: &str) -> Result<Vec<Neighbor>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Top {
        #[serde(default)]
        neighbors: BTreeMap<String, Vec<Neighbor>>,
    }
    let top: Top = serde_json::from_str(json)?;
    Ok(top
        .neighbors
        .into_iter()
        .flat_map(|(id, list)| {
            list.into_iter().map(move |mut n| {
                n.router_id = id.clone();
                n
            })
        })
        .collect())
}

/// One OSPF route (`show ip ospf route json`: prefix -> {routeType, cost, nexthops...}).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OspfRoute {
    pub prefix: String,
    pub route_type: String,
    pub cost: Option<u64>,
    pub nexthops: Vec<String>,
}

/// Parses `show ip ospf route json` (network routes only).
pub fn parse_routes(json: &str) -> Result<Vec<OspfRoute>, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    let mut out = Vec::new();
    for (prefix, r) in v.as_object().into_iter().flatten() {
        if !prefix.contains('/') {
            continue;
        }
        let nexthops = r["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let ip = n["ip"].as_str().unwrap_or("");
                let via = n["via"]
                    .as_str()
                    .or(n["directlyAttachedTo"].as_str())
                    .unwrap_or("");
                if ip.is_empty() || ip == " " {
                    via.to_string()
                } else {
                    format!("{ip} via {via}")
                }
            })
            .collect();
        out.push(OspfRoute {
            prefix: prefix.clone(),
            route_type: r["routeType"].as_str().unwrap_or("").to_string(),
            cost: r["cost"].as_u64(),
            nexthops,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frr_neighbor_json_parses() {
        let j = r#"{"neighbors":{"172.16.0.2":[{"priority":1,"state":"Full/-","nbrState":"Full/-","upTimeInMsec":15123,"deadTimeMsecs":3391,"address":"172.16.0.2","ifaceName":"eth3:172.16.0.1","retransmitCounter":0}]}}"#;
        let n = parse_neighbors(j).unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].router_id, "172.16.0.2");
        assert!(n[0].is_full());
        assert_eq!(n[0].up_msec, Some(15123));
        assert_eq!(n[0].interface, "eth3:172.16.0.1");
    }

    #[test]
    fn frr_route_json_parses() {
        let j = r#"{"10.3.0.0/24":{"routeType":"N","cost":20,"area":"0.0.0.0","nexthops":[{"ip":"172.16.0.2","via":"eth3"}]},"172.16.0.0/30":{"routeType":"N","cost":10,"area":"0.0.0.0","nexthops":[{"ip":" ","directlyAttachedTo":"eth3"}]}}"#;
        let r = parse_routes(j).unwrap();
        assert_eq!(r[0].prefix, "10.3.0.0/24");
        assert_eq!(r[0].nexthops, ["172.16.0.2 via eth3"]);
        assert_eq!(r[1].nexthops, ["eth3"]);
    }
}
