//! `diagnostics.py <type> <ip> [params]` (contract §8): the request read as the MS builds it
//! (`<type> <ip>[ <params>]`, params matching `^[\w\-\s.]+$`), then `stdout&&\nstderr&&\nrc`.
//! Only the options below are understood; anything else is refused before anything runs, so
//! no parameter can make a tool run another program, write a file or flood.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ping,
    Ping6,
    Traceroute,
    Traceroute6,
    Arping,
}

/// A request that may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub tool: Tool,
    pub destination: IpAddr,
    /// `-c` for ping/ping6/arping (default 4), `-m` for traceroute (default 20).
    pub count: u32,
    /// `-I` (`-i` for traceroute).
    pub interface: Option<String>,
}

/// The most echo requests one call sends: at one a second it ends well inside the 60 s the
/// MS gives diagnostics.
pub const MAX_COUNT: u32 = 40;
/// The most hops of a traceroute.
pub const MAX_HOPS: u32 = 30;

/// Why a request was refused (nothing ran).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// unknown diagnostics type {0:?} (ping, ping6, traceroute, traceroute6, arping)
    #[error("unknown diagnostics type {0:?} (ping, ping6, traceroute, traceroute6, arping)")]
    Type(String),
    /// missing destination address
    #[error("missing destination address")]
    NoDestination,
    /// destination {0:?} is not an IP address of the type's family
    #[error("destination {0:?} is not an IP address of the type's family")]
    Destination(String),
    /// parameter {0:?} has characters other than letters, digits, _ - . and spaces
    #[error("parameter {0:?} has characters other than letters, digits, _ - . and spaces")]
    Characters(String),
    /// option {0:?} is not supported for {1}
    #[error("option {0:?} is not supported for {1}")]
    Option(String, &'static str),
    /// option {0} needs a value
    #[error("option {0} needs a value")]
    Value(String),
    /// {0} {1:?} out of range 1-{2}
    #[error("{0} {1:?} out of range 1-{2}")]
    Range(&'static str, String, u32),
    /// interface {0:?} is not a valid interface name
    #[error("interface {0:?} is not a valid interface name")]
    Interface(String),
}

fn name(t: Tool) -> &'static str {
    match t {
        Tool::Ping => "ping",
        Tool::Ping6 => "ping6",
        Tool::Traceroute => "traceroute",
        Tool::Traceroute6 => "traceroute6",
        Tool::Arping => "arping",
    }
}

/// The MS's parameter check, `^[\w\-\s.]+$` (Java `\w` is ASCII).
fn ms_param_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') || c.is_whitespace())
}

fn ifname_ok(s: &str) -> bool {
    (1..16).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !s.starts_with('-')
        && s != "."
        && s != ".."
}

/// Reads the arguments (the remote shell split them; they are joined and split again).
pub fn parse(args: &[String]) -> Result<Request, Refused> {
    let joined = args.join(" ");
    let mut words = joined.split_whitespace();
    let ty = words.next().unwrap_or("");
    let tool = match ty {
        "ping" => Tool::Ping,
        "ping6" => Tool::Ping6,
        "traceroute" => Tool::Traceroute,
        "traceroute6" => Tool::Traceroute6,
        "arping" => Tool::Arping,
        other => return Err(Refused::Type(other.chars().take(32).collect())),
    };
    let dest = words.next().ok_or(Refused::NoDestination)?;
    let destination: IpAddr = dest
        .parse()
        .map_err(|_| Refused::Destination(dest.chars().take(64).collect()))?;
    let family_ok = match tool {
        Tool::Ping | Tool::Traceroute => true,
        Tool::Ping6 | Tool::Traceroute6 => destination.is_ipv6(),
        Tool::Arping => destination.is_ipv4(),
    };
    if !family_ok {
        return Err(Refused::Destination(dest.to_string()));
    }
    let traceroute = matches!(tool, Tool::Traceroute | Tool::Traceroute6);
    let (count_opt, max) = if traceroute {
        ("-m", MAX_HOPS)
    } else {
        ("-c", MAX_COUNT)
    };
    let mut req = Request {
        tool,
        destination,
        count: if traceroute { 20 } else { 4 },
        interface: None,
    };
    let rest: Vec<&str> = words.collect();
    let params = rest.join(" ");
    if !rest.is_empty() && !ms_param_ok(&params) {
        return Err(Refused::Characters(params.chars().take(64).collect()));
    }
    let mut it = rest.into_iter();
    while let Some(opt) = it.next() {
        let iface_opt = if traceroute { "-i" } else { "-I" };
        if opt == count_opt {
            let v = it.next().ok_or_else(|| Refused::Value(opt.to_string()))?;
            req.count = v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    Refused::Range(if traceroute { "hops" } else { "count" }, v.into(), max)
                })?;
        } else if opt == iface_opt {
            let v = it.next().ok_or_else(|| Refused::Value(opt.to_string()))?;
            if !ifname_ok(v) {
                return Err(Refused::Interface(v.chars().take(32).collect()));
            }
            req.interface = Some(v.to_string());
        } else {
            return Err(Refused::Option(opt.chars().take(32).collect(), name(tool)));
        }
    }
    Ok(req)
}

/// The answer: `stdout&&\nstderr&&\nrc\n`. `&&` inside a field would shift the Java's split,
/// so it is broken up.
pub fn render(stdout: &str, stderr: &str, rc: i32) -> String {
    let field = |s: &str| {
        let mut f = s.trim().to_string();
        while f.contains("&&") {
            f = f.replace("&&", "& &");
        }
        // A trailing `&` would join the separator (`a&&&`) and Java's split would move it
        // into the next field.
        if f.ends_with('&') {
            f.push(' ');
        }
        f
    };
    format!("{}&&\n{}&&\n{rc}\n", field(stdout), field(stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port of `DiagnosticsAnswer.getExecutionDetails`: (STDOUT, STDERR, EXITCODE), `None`
    /// where the Java throws "Unsupported diagnostics command type supplied".
    fn java_parse(details: &str) -> Option<(String, String, String)> {
        let p: Vec<&str> = details.split("&&").collect();
        (p.len() >= 3).then(|| (p[0].trim().into(), p[1].trim().into(), p[2].trim().into()))
    }

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn defaults_are_added_when_absent_as_upstream() {
        let r = parse(&args("ping 10.1.1.5")).unwrap();
        assert_eq!((r.tool, r.count, r.interface), (Tool::Ping, 4, None));
        assert_eq!(parse(&args("traceroute 10.1.1.5")).unwrap().count, 20);
        assert_eq!(parse(&args("ping 10.1.1.5 -c 2 -I eth0")).unwrap().count, 2);
        let t = parse(&args("traceroute6 2001:db8::1 -m 5 -i eth2")).unwrap();
        assert_eq!((t.count, t.interface.as_deref()), (5, Some("eth2")));
        assert_eq!(
            parse(&["arping 10.0.0.1 -I eth1".into()])
                .unwrap()
                .interface
                .as_deref(),
            Some("eth1")
        );
    }

    #[test]
    fn nothing_that_could_run_something_else_gets_through() {
        for bad in [
            "ping 10.1.1.5 ; reboot",
            "ping $(id)",
            "ping 10.1.1.5 -c 2;id",
            "ping 10.1.1.5 -f",
            "ping 10.1.1.5 -c 1000",
            "ping 10.1.1.5 -c",
            "ping 10.1.1.5 -I -oProxyCommand",
            "traceroute 10.1.1.5 -m 31",
            "traceroute 10.1.1.5 -P 1",
            "ping6 10.1.1.5",
            "arping 2001:db8::1",
            "nc 10.1.1.5",
            "ping example.com",
            "ping",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            parse(&args("ping 10.1.1.5 -w 3")).unwrap_err().to_string(),
            "option \"-w\" is not supported for ping"
        );
    }

    #[test]
    fn the_answer_survives_the_java_split() {
        let out =
            "PING 10.1.1.5 (10.1.1.5) 56(84) bytes of data.\n64 bytes from 10.1.1.5: icmp_seq=1\n";
        let text = render(out, "", 0);
        assert_eq!(text, "PING 10.1.1.5 (10.1.1.5) 56(84) bytes of data.\n64 bytes from 10.1.1.5: icmp_seq=1&&\n&&\n0\n");
        let (o, e, rc) = java_parse(&text).unwrap();
        assert!(o.ends_with("icmp_seq=1") && e.is_empty() && rc == "0");
        let (o, e, rc) = java_parse(&render("a && b", "x&&&&y", 2)).unwrap();
        assert_eq!(
            (o.as_str(), e.as_str(), rc.as_str()),
            ("a & & b", "x& & & &y", "2")
        );
        let (o, e, rc) = java_parse(&render("ends with &", "&", 1)).unwrap();
        assert_eq!(
            (o.as_str(), e.as_str(), rc.as_str()),
            ("ends with &", "&", "1")
        );
    }
}
