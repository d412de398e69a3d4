//! Routed IPv4 mode: a `cmdline` with `is_routed=true` (CloudStack 4.20+ routed networks,
//! whose guests hold addresses routed to them, announced over BGP or static routes upstream)
//! means no source NAT for the router's guest networks. Only the source-NAT binding goes: the
//! firewall (router input, ingress and egress rules, the forward filter that drops new
//! inbound connections no rule opens) applies as in NAT mode.
//!
//! Applied after every merge, so the order of `cmdline` and `ips` in a push does not matter,
//! and turning routed mode off again restores source NAT with the next `ips` push.

use crate::state::DesiredState;

/// Whether the cmdline says the router's networks are routed.
pub fn is_routed(s: &DesiredState) -> bool {
    s.cloudstack
        .cmdline
        .get("is_routed")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Drops source NAT in routed mode.
pub fn apply(s: &mut DesiredState) {
    if is_routed(s) {
        s.nat.source_nat.clear();
    }
}

#[cfg(test)]
mod tests {
    use crate::{merge, parse_payload, LocalNics};

    const CMD: &str = r#"{"type":"cmdline","delete_from_processed_cache":false,"cmd_line":{"type":"router","eth0ip":"10.1.1.1","eth0mask":"255.255.255.0","eth2ip":"192.0.2.10","eth2mask":"255.255.255.0","gateway":"192.0.2.1","is_routed":"ROUTED"}}"#;
    const IPS: &str = r#"{"type":"ips","delete_from_processed_cache":false,"ip_address":[{"public_ip":"192.0.2.10","source_nat":true,"add":true,"one_to_one_nat":false,"first_i_p":true,"gateway":"192.0.2.1","netmask":"255.255.255.0","nic_dev_id":2,"new_nic":false,"nw_type":"public"}]}"#;

    fn run(cmd: &str) -> crate::state::DesiredState {
        let nics = LocalNics::default();
        let mut s = crate::state::DesiredState::default();
        for t in [cmd, IPS] {
            s = merge(&s, &parse_payload(t).unwrap(), &nics).unwrap().state;
        }
        s
    }

    #[test]
    fn routed_networks_get_no_source_nat_and_keep_the_firewall() {
        // NAT mode (any value but "true"): source NAT of the guest network.
        let nat = run(CMD);
        assert_eq!(nat.nat.source_nat.len(), 1, "{:?}", nat.nat);
        let routed = run(&CMD.replace("ROUTED", "true"));
        assert!(routed.nat.source_nat.is_empty(), "{:?}", routed.nat);
        // The public address and its NIC stay (the firewall and BGP use them).
        assert!(routed.interfaces.iter().any(|i| i.device == "eth2"));
    }
}
