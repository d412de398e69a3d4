//! Counters read by netlink dumps (`netlink::dump`, `rule_counts`) against what `nft` lists
//! of the same tables, in a fresh namespace: element counters of `inet vr_rule_stats` (single
//! ports, a port range, static NAT addresses) and rule counters with chain and rule comments.
//! Needs root and nft (skipped otherwise, except CI=true).

use std::io::Write;
use std::process::{Command, Stdio};

use vr_nat::netlink::dump;
use vr_nat::rule_stats::{parse_current, TABLE};

struct Ns(String);
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn capable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let nft = Command::new("nft").arg("--version").output().is_ok();
    if root && nft {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but root/nft missing (root={root}, nft={nft})");
    }
    eprintln!("skipped: needs root and nft");
    false
}

fn nft(ns: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut c = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft");
    if let Some(text) = stdin {
        c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(c.stdin.take());
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a thread moved into namespace `name`.
fn inside<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        use std::os::fd::AsRawFd;
        // SAFETY: moves only this thread into the namespace.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns");
        f()
    })
    .join()
    .unwrap()
}

const TABLES: &str = r#"
table inet vr_rule_stats {
    set forwards { type ipv4_addr . inet_proto . inet_service; counter;
        elements = { 192.0.2.10 . tcp . 22 counter packets 5 bytes 300,
                     192.0.2.11 . udp . 53 counter packets 0 bytes 0 } }
    set forward_ranges { type ipv4_addr . inet_proto . inet_service; flags interval; counter;
        elements = { 192.0.2.10 . tcp . 8000-8100 counter packets 7 bytes 4200 } }
    set static_in { type ipv4_addr; counter; elements = { 192.0.2.20 counter packets 9 bytes 900 } }
    set static_out { type ipv4_addr; counter; elements = { 10.1.1.7 counter packets 1 bytes 64 } }
    chain count {
        type filter hook prerouting priority -150; policy accept;
        ip daddr . meta l4proto . th dport @forwards
        ip daddr . meta l4proto . th dport @forward_ranges
        ip daddr @static_in
        ip saddr @static_out
    }
}
table ip vr {
    chain fw_in_0 {
        comment "ingress 192.0.2.10"
        tcp dport 22 counter packets 3 bytes 180 accept comment "rule 11"
        counter packets 2 bytes 120 drop
    }
    chain other {
        tcp dport 1 accept
    }
}
"#;

#[test]
fn dumps_read_what_nft_lists() {
    if !capable() {
        return;
    }
    let name = format!("vrdump-{}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap()
        .success());
    let ns = Ns(name);
    nft(&ns.0, &["-f", "-"], Some(TABLES));

    // Element counters: the dump and nft's JSON agree element for element.
    let listed = parse_current(&nft(&ns.0, &["-j", "list", "table", "inet", TABLE], None)).unwrap();
    let dumped = inside(&ns.0, || vr_nat::rule_counts::read().unwrap()).expect("table");
    let sorted = |mut c: vr_nat::rule_stats::Current| {
        c.forwards.sort_by_key(|(f, _)| *f);
        c
    };
    assert!(dumped.complete);
    assert_eq!(sorted(dumped.clone()), sorted(listed.clone()));
    assert_eq!(dumped.forwards.len(), 3);
    assert!(dumped
        .forwards
        .iter()
        .any(|(f, c)| f.ports() == "8000-8100" && c.bytes == 4200));

    // Rule counters with the chain's and the rules' comments.
    let (rules, comments) = inside(&ns.0, || {
        let ip = libc::NFPROTO_IPV4 as u8;
        (
            dump::rule_counters(ip, "vr", 100).unwrap().expect("table"),
            dump::chain_comments(ip, "vr").unwrap().expect("table"),
        )
    });
    assert_eq!(
        comments.get("fw_in_0").map(String::as_str),
        Some("ingress 192.0.2.10")
    );
    let got: Vec<(String, Option<String>, u64, u64)> = rules
        .into_iter()
        .map(|r| (r.chain, r.comment, r.packets, r.bytes))
        .collect();
    assert_eq!(
        got,
        [
            ("fw_in_0".to_string(), Some("rule 11".to_string()), 3, 180),
            ("fw_in_0".to_string(), None, 2, 120)
        ]
    );

    // A set that does not exist reads as absent; a table that does not exist has no rules.
    // Neither is an error.
    let absent = inside(&ns.0, || {
        (
            dump::rule_counters(libc::NFPROTO_IPV6 as u8, "vr", 100).unwrap(),
            dump::set_elements(libc::NFPROTO_INET as u8, TABLE, "nope").unwrap(),
        )
    });
    assert_eq!(absent, (Some(vec![]), None));
}
