//! Honest answers: a push whose data is stored but not applied by this agent version (a
//! concern that has not landed yet) says so, by CloudStack type and by concern, in the
//! message the management server reads, instead of a plain "applied".

/// The concern a stored-but-not-applied type belongs to.
pub fn concern_of(kind: &str) -> &'static str {
    match kind {
        "dhcpentry" | "dhcpconfig" => "DHCP and DNS",
        "vmdata" => "metadata and user data",
        "vmpassword" => "VM passwords",
        "ipaliases" => "guest IP aliases",
        "loadbalancer" => "load balancing",
        "remoteaccessvpn" | "vpnuserlist" => "remote-access VPN",
        "monitorservice" => "monitoring",
        "bgppeers" => "BGP",
        "ipv6firewallrules" => "IPv6 firewall",
        "guestnetwork-ipv6" => "guest IPv6",
        _ => "not applied by this version",
    }
}

/// `"; stored, NOT applied by this agent version: vmdata (metadata and user data), ..."`
/// (`dry_run`: "would be stored"), or nothing when everything was applied.
pub fn sentence(kinds: &[String], dry_run: bool) -> String {
    if kinds.is_empty() {
        return String::new();
    }
    let list: Vec<String> = kinds
        .iter()
        .map(|k| format!("{k} ({})", concern_of(k)))
        .collect();
    let stored = if dry_run { "would be stored" } else { "stored" };
    format!(
        "; {stored}, NOT applied by this agent version: {}",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_type_and_its_concern() {
        assert_eq!(sentence(&[], false), "");
        assert!(sentence(&["vmdata".into()], true).starts_with("; would be stored, NOT"));
        assert_eq!(
            sentence(&["vmdata".into(), "vpnuserlist".into()], false),
            "; stored, NOT applied by this agent version: vmdata (metadata and user data), \
             vpnuserlist (remote-access VPN)"
        );
        // Every type the adapter can leave pending has a concern name.
        for k in crate::cloudstack::later::LATER_TYPES
            .iter()
            .chain(&["ipv6firewallrules", "guestnetwork-ipv6"])
        {
            assert_ne!(concern_of(k), "not applied by this version", "{k}");
        }
    }
}
