//! dnsmasq's lease file, read for `vr-agent show dhcp` and the tests.

use std::net::Ipv4Addr;

/// One line of the lease file: `EXPIRY MAC IP NAME CLIENT-ID` (expiry 0 = infinite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub expiry: u64,
    pub mac: String,
    pub ip: Ipv4Addr,
    /// `None` when dnsmasq wrote `*`.
    pub name: Option<String>,
}

/// Every well-formed IPv4 lease of `text` (IPv6 lines and anything unreadable are skipped).
pub fn parse(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let expiry = f.next()?.parse().ok()?;
            let mac = f.next()?.to_ascii_lowercase();
            let ip = f.next()?.parse().ok()?;
            let name = f.next().filter(|n| *n != "*").map(String::from);
            Some(Lease {
                expiry,
                mac,
                ip,
                name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_dnsmasq_lines() {
        let l = super::parse(
            "0 02:00:00:11:00:11 10.11.0.11 guest1 01:02:00:00:11:00:11\n\
             1700000000 02:00:00:11:00:12 10.11.0.12 * *\nduid 00:01\n",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].name.as_deref(), Some("guest1"));
        assert_eq!(l[1].expiry, 1_700_000_000);
        assert_eq!(l[1].name, None);
    }
}
