//! `netusage.sh` / `vpc_netusage.sh` (contract §10): the options as upstream reads them and
//! the `sent:recv:sent:recv:` answer of `-g`. The counters themselves (table `inet vr_stats`,
//! four per public NIC, in the place of upstream's `NETWORK_STATS` chains) are the agent's:
//! planned in `vr_nat::usage`, kept by its `usage` concern from the push that brings a public
//! NIC; these scripts only read them.

/// What one call asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `-c`: upstream creates the chains here (router start, NIC plugged); the agent keeps
    /// them from the push on, so this is a no-op that exits 0.
    Create,
    /// `-g`: print the counters.
    Get,
    /// `-r`: accepted; counters are never reset (the MS copes with either, and a reset
    /// would lose what was counted since the last read).
    Reset,
    /// `-a`, `-d`, `-n`, `-v` alone: no-ops upstream too.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub action: Action,
    /// `-l <publicIp>`: the public NIC holding it.
    pub public_ip: Option<String>,
}

/// A usage error (exit 2, as upstream's getopts usage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Usage {
    /// option {0} needs a value
    #[error("option {0} needs a value")]
    Value(String),
    /// unknown option {0:?}
    #[error("unknown option {0:?}")]
    Unknown(String),
    /// -l {0:?} is not an IPv4 address
    #[error("-l {0:?} is not an IPv4 address")]
    Address(String),
}

/// Reads the options (`vpc`: `vpc_netusage.sh`, which also takes `-v <cidr>` and `-n`). As
/// with upstream's `getopts`, the last action given wins and `-g` beats the no-ops.
pub fn parse_args(args: &[String], vpc: bool) -> Result<Args, Usage> {
    let joined = args.join(" ");
    let mut words = joined.split_whitespace();
    let mut out = Args {
        action: Action::Nothing,
        public_ip: None,
    };
    while let Some(w) = words.next() {
        let mut value = |o: &str| {
            words
                .next()
                .map(str::to_string)
                .ok_or_else(|| Usage::Value(o.into()))
        };
        match w {
            "-c" => {
                if out.action != Action::Get {
                    out.action = Action::Create
                }
            }
            "-g" => out.action = Action::Get,
            "-r" => {
                if out.action != Action::Get {
                    out.action = Action::Reset
                }
            }
            "-l" => {
                let ip = value("-l")?;
                if ip.parse::<std::net::Ipv4Addr>().is_err() {
                    return Err(Usage::Address(ip.chars().take(40).collect()));
                }
                out.public_ip = Some(ip);
            }
            "-a" | "-d" if !vpc => {
                value(w)?;
            }
            "-v" if vpc => {
                value(w)?;
            }
            "-d" | "-n" if vpc => {}
            other => return Err(Usage::Unknown(other.chars().take(32).collect())),
        }
    }
    Ok(out)
}

/// The `-g` answer: each counter's bytes followed by `:`, no newline.
pub fn render_get(bytes: &[u64]) -> String {
    bytes.iter().map(|b| format!("{b}:")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port of `LCR.getNetworkStats` / `getVPCNetworkStats`: (bytes sent, bytes received).
    fn java_parse(result: &str) -> (i64, i64) {
        let mut split: Vec<&str> = result.split(':').collect();
        // Java's String.split drops trailing empty strings.
        while split.len() > 1 && split.last() == Some(&"") {
            split.pop();
        }
        let mut stats = (0i64, 0i64);
        let mut i = 0;
        while i + 1 < split.len() {
            stats.0 += split[i].parse::<i64>().unwrap();
            stats.1 += split[i + 1].parse::<i64>().unwrap();
            i += 2;
        }
        stats
    }

    #[test]
    fn options_as_upstream() {
        let a = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(parse_args(&a("-g"), false).unwrap().action, Action::Get);
        let g = parse_args(&a("-g -l 192.0.2.10"), false).unwrap();
        assert_eq!(g.public_ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(parse_args(&a("-c"), false).unwrap().action, Action::Create);
        assert_eq!(
            parse_args(&a("-a eth3"), false).unwrap().action,
            Action::Nothing
        );
        assert_eq!(
            parse_args(&a("-l 192.0.2.10 -c -v 10.0.0.0/16"), true)
                .unwrap()
                .action,
            Action::Create
        );
        assert_eq!(
            parse_args(&a("-l 192.0.2.10 -n"), true).unwrap().action,
            Action::Nothing
        );
        assert_eq!(parse_args(&a("-r"), true).unwrap().action, Action::Reset);
        assert!(parse_args(&a("-g -l"), false).is_err());
        assert!(parse_args(&a("-g -l 1.2.3.4;reboot"), false).is_err());
        assert!(parse_args(&a("-v 10.0.0.0/8"), false).is_err());
        assert!(parse_args(&a("-x"), true).is_err());
    }

    #[test]
    fn get_answers_through_the_java_parse() {
        let out = render_get(&[1_048_576, 2_097_152, 4096, 8192]);
        assert_eq!(out, "1048576:2097152:4096:8192:");
        assert_eq!(java_parse(&out), (1_048_576 + 4096, 2_097_152 + 8192));
        assert_eq!(render_get(&[]), "");
    }
}
