//! The feature each CloudStack type left pending belongs to, so the engine can say what was
//! stored but not applied ("vmdata (metadata and user data)") without knowing CloudStack's
//! type names: the adapter hands them over as [`NotApplied`] data.

use vr_model::NotApplied;

/// The feature a stored-but-not-applied type belongs to.
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
        _ => "not applied by this version",
    }
}

/// `kind` with its feature.
pub fn not_applied(kind: &'static str) -> NotApplied {
    NotApplied {
        kind,
        concern: concern_of(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pending_type_has_a_concern() {
        // Every type the adapter can leave pending has a concern name.
        for k in crate::later::LATER_TYPES.iter() {
            assert_ne!(concern_of(k), "not applied by this version", "{k}");
        }
        assert_eq!(not_applied("vmdata").concern, "metadata and user data");
    }
}
