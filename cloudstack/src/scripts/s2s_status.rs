//! `checkbatchs2svpn.sh <ip> <ip> …` (contract §7): per peer `ip:code:info&`, no newline.

use std::net::Ipv4Addr;

/// The info text of a connected peer (code 0) and of any other (code 11), as upstream.
pub const CONNECTED: &str = "IPsec SA found;Site-to-site VPN have connected";
pub const NOT_CONNECTED: &str = "IPsec SA not found;Site-to-site VPN have not connected";

/// The peers to report, in argument order, duplicates dropped. Only IPv4 addresses: an IPv6
/// peer's `:` would stop the Java parse of every entry after it, and anything else is not a
/// peer (the MS sends addresses; the remote shell may split them oddly).
pub fn peers(args: &[String]) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for a in args.iter().flat_map(|a| a.split_whitespace()) {
        if let Ok(ip) = a.parse::<Ipv4Addr>() {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

/// The whole answer (`echo -n` style: no newline).
pub fn render(status: &[(Ipv4Addr, bool)]) -> String {
    status
        .iter()
        .map(|(ip, up)| {
            if *up {
                format!("{ip}:0:{CONNECTED}&")
            } else {
                format!("{ip}:11:{NOT_CONNECTED}&")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Port of `CheckS2SVpnConnectionsAnswer.parseDetails`: (ip -> connected, ip -> detail).
    /// `details` is what `AllLinesParser` hands over: the output plus a trailing newline.
    fn java_parse(details: &str) -> (BTreeMap<String, bool>, BTreeMap<String, String>) {
        let (mut connected, mut detail) = (BTreeMap::new(), BTreeMap::new());
        for line in details.split('&') {
            let words: Vec<&str> = line.split(':').collect();
            if words.len() != 3 {
                break;
            }
            connected.insert(words[0].to_string(), words[1] == "0");
            detail.insert(words[0].to_string(), words[2].to_string());
        }
        (connected, detail)
    }

    #[test]
    fn the_contract_example_byte_for_byte_and_through_the_java_parse() {
        let out = render(&[
            ("1.2.3.4".parse().unwrap(), true),
            ("5.6.7.8".parse().unwrap(), false),
        ]);
        assert_eq!(
            out,
            "1.2.3.4:0:IPsec SA found;Site-to-site VPN have connected&5.6.7.8:11:IPsec SA not found;Site-to-site VPN have not connected&"
        );
        let (c, d) = java_parse(&format!("{out}\n"));
        assert!(c["1.2.3.4"]);
        assert!(!c["5.6.7.8"]);
        assert_eq!(d["5.6.7.8"], NOT_CONNECTED);
        assert!(!CONNECTED.contains(':') && !NOT_CONNECTED.contains(':'));
    }

    #[test]
    fn arguments_keep_order_and_drop_what_would_break_the_parse() {
        let args: Vec<String> = ["5.6.7.8 1.2.3.4 ", "2001:db8::1", "5.6.7.8", "x;y", "-g"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = peers(&args);
        assert_eq!(
            p,
            [
                "5.6.7.8".parse::<Ipv4Addr>().unwrap(),
                "1.2.3.4".parse().unwrap()
            ]
        );
        let out = render(&p.iter().map(|ip| (*ip, false)).collect::<Vec<_>>());
        assert_eq!(java_parse(&out).0.len(), 2);
        assert_eq!(render(&[]), "");
    }
}
