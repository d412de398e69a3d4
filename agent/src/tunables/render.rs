//! How a `/proc/sys` path is named on the `sysctl` command line.

/// `net/ipv4/conf/eth2/rp_filter` -> `net.ipv4.conf.eth2.rp_filter`. A component that holds a
/// dot (a NIC named `eth0.100`) cannot be written with dots, so such a name keeps its
/// slashes, which `sysctl` accepts as well.
pub fn sysctl_name(path: &str) -> String {
    if path.split('/').any(|c| c.contains('.')) {
        path.to_string()
    } else {
        path.replace('/', ".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_unless_a_component_has_a_dot() {
        assert_eq!(sysctl_name("net/ipv4/ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(
            sysctl_name("net/ipv4/conf/eth0.100/rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
    }
}
