//! The delta merge against the reporting merge, and what it rebuilds.

use super::*;
use crate::quick_read::{read, Read};
use crate::{parse_payload, LocalNics};

/// Rule `i`: public port 10000+i on 192.0.2.11 to 10.1.1.<i>:80.
fn rule(i: u32, revoke: bool, to: &str) -> String {
    format!(
        r#"{{"revoke":{revoke},"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"{p}:{p}","destination_ip_address":"{to}","destination_port_range":"80:80"}}"#,
        p = 10_000 + i
    )
}

fn push(rules: &[String]) -> String {
    format!(
        r#"{{"type":"forwardrules","delete_from_processed_cache":false,"rules":[{}]}}"#,
        rules.join(",")
    )
}

fn list(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| rule(i, false, &format!("10.1.1.{}", 1 + i)))
        .collect()
}

fn base() -> DesiredState {
    serde_json::from_str(
        r#"{"interfaces":[{"device":"eth2","role":"public","addresses":["192.0.2.11/24"]}]}"#,
    )
    .unwrap()
}

/// The reporting path's state after `text`.
fn reporting(state: &DesiredState, text: &str) -> DesiredState {
    let p = parse_payload(text).unwrap();
    crate::merge(state, &p, &LocalNics::new()).unwrap().state
}

/// The delta path's state and counts after `text`, which it must accept.
fn delta(state: &DesiredState, text: &str) -> (DesiredState, Delta) {
    let Read::Forwards(rules) = read(text) else {
        panic!("not read quickly: {text}");
    };
    let (m, d) = merge(state, &rules).expect("merged as a delta");
    (m.state, d)
}

fn stored(n: u32) -> DesiredState {
    reporting(&base(), &push(&list(n)))
}

#[test]
fn the_same_list_re_sent_builds_nothing() {
    let s = stored(50);
    let (next, d) = delta(&s, &push(&list(50)));
    assert_eq!(next, s);
    assert_eq!(
        d,
        Delta {
            unchanged: 50,
            ..Delta::default()
        }
    );
}

#[test]
fn one_changed_field_rebuilds_exactly_that_rule() {
    let s = stored(50);
    let mut l = list(50);
    l[17] = rule(17, false, "10.1.2.99");
    let text = push(&l);
    let (next, d) = delta(&s, &text);
    assert_eq!(next, reporting(&s, &text));
    assert_eq!(
        d,
        Delta {
            unchanged: 49,
            replaced: 1,
            ..Delta::default()
        }
    );
    let changed: Vec<usize> = (0..50)
        .filter(|&i| next.nat.port_forwards[i] != s.nat.port_forwards[i])
        .collect();
    assert_eq!(changed, [17]);
    assert_eq!(
        next.nat.port_forwards[17].private_ip.to_string(),
        "10.1.2.99"
    );
    assert_eq!(next.nat.port_forwards[17].device.as_deref(), Some("eth2"));
}

#[test]
fn a_revoked_rule_in_the_list_is_removed_and_a_new_one_added() {
    let s = stored(50);
    let mut l = list(51);
    l[3] = rule(3, true, "10.1.1.4");
    let text = push(&l);
    let (next, d) = delta(&s, &text);
    assert_eq!(next, reporting(&s, &text));
    assert_eq!(
        d,
        Delta {
            unchanged: 49,
            added: 1,
            removed: 1,
            ..Delta::default()
        }
    );
    assert_eq!(next.nat.port_forwards.len(), 50);
}

#[test]
fn same_state_as_the_reporting_merge() {
    let s = stored(20);
    let mut cases: Vec<Vec<String>> = vec![
        Vec::new(),
        list(5),
        list(25),
        // Revoked first, then added again: appended at the end, as the reporting merge does.
        vec![rule(2, true, "10.1.1.3"), rule(2, false, "10.1.1.3")],
        // Revoking what is not stored, and a rule sent twice the same.
        vec![
            rule(99, true, "10.9.9.9"),
            rule(4, false, "10.1.1.5"),
            rule(4, false, "10.1.1.5"),
        ],
        // On a public IP no NIC holds: no device.
        vec![rule(1, false, "10.1.1.2").replace("192.0.2.11", "198.51.100.7")],
        // Public IPs alternating between a held and an unheld one.
        vec![
            rule(30, false, "10.1.1.2").replace("192.0.2.11", "198.51.100.7"),
            rule(31, false, "10.1.1.3"),
            rule(32, false, "10.1.1.4").replace("192.0.2.11", "198.51.100.7"),
            rule(33, false, "10.1.1.5"),
        ],
    ];
    let mut shuffled = list(20);
    shuffled.reverse();
    cases.push(shuffled);
    for rules in cases {
        let text = push(&rules);
        assert_eq!(delta(&s, &text).0, reporting(&s, &text), "{text}");
    }
}

#[test]
fn what_the_reporting_path_must_name_is_not_merged_here() {
    let s = stored(20);
    // A new rule mapping an unchanged rule's public port elsewhere.
    let mut l = list(20);
    l.push(rule(5, false, "10.1.9.9"));
    let text = push(&l);
    let Read::Forwards(rules) = read(&text) else {
        panic!()
    };
    assert!(merge(&s, &rules).is_none());
    let err = parse_payload(&text).unwrap_err();
    assert_eq!(err.0[0].path, "rules[20].source_port_range", "{err}");
    assert!(
        err.0[0].reason.contains("already forwarded to 10.1.1.6"),
        "{err}"
    );
    // A rule failing a check.
    let text = push(&[rule(1, false, "10.1.1.300")]);
    let Read::Forwards(rules) = read(&text) else {
        panic!()
    };
    assert!(merge(&s, &rules).is_none());
}
