//! Where the pure part of a push goes at 10,000 forwards, +1 re-sent (issue 15): run with
//! `cargo test --release -p vr-agent --test intake_speed -- --ignored --nocapture`.
//! A measurement, not a pass/fail check (timings on a shared machine are not asserts).

use std::time::Instant;

use vr_agent::push::{prepare, LocalNics};
use vr_agent::state::DesiredState;

const BASE: &str = r#"{"schema":1,
    "interfaces":[{"device":"eth0","role":"guest","addresses":["10.1.0.1/16"]},
                  {"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24"]}],
    "nat":{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10","source_cidrs":["10.1.0.0/16"]}]}}"#;

fn cs_rule(i: u32) -> String {
    format!(
        r#"{{"revoke":false,"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"{p}:{p}","destination_ip_address":"10.1.{}.{}","destination_port_range":"80:80"}}"#,
        10 + i / 250,
        1 + i % 250,
        p = 10_000 + i
    )
}

fn forwardrules(from: u32, to: u32) -> String {
    let rules: Vec<String> = (from..to).map(cs_rule).collect();
    format!(
        r#"{{"type":"forwardrules","delete_from_processed_cache":false,"rules":[{}]}}"#,
        rules.join(",")
    )
}

fn best<T>(n: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
    }
    best
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn intake_at_10k_plus_one() {
    let nics = LocalNics::new();
    let base = prepare(&DesiredState::default(), BASE, &nics)
        .unwrap()
        .state;
    for n in [100u32, 10_000] {
        let stored = prepare(&base, &forwardrules(0, n), &nics).unwrap().state;
        let text = forwardrules(0, n + 1);
        let total = best(20, || prepare(&stored, &text, &nics).unwrap());
        let read = best(20, || vr_cloudstack::quick_read::read(&text));
        let vr_cloudstack::quick_read::Read::Forwards(rules) =
            vr_cloudstack::quick_read::read(&text)
        else {
            panic!("not read quickly")
        };
        let merge = best(20, || {
            vr_cloudstack::forward_delta::merge(&stored, &rules).unwrap()
        });
        let clone = best(20, || stored.clone());
        let m = vr_cloudstack::forward_delta::merge(&stored, &rules)
            .unwrap()
            .0
            .state;
        let validate = best(20, || vr_agent::validate::validate_state(&m).unwrap());
        let slow = best(5, || {
            let p = vr_cloudstack::parse_payload(&text).unwrap();
            vr_cloudstack::merge(&stored, &p, &nics).unwrap()
        });
        println!(
            "{n} +1: prepare {total:.2} ms (one-pass read {read:.2}, delta merge {merge:.2} of which state clone {clone:.2}, validate {validate:.2}); reporting path's parse+merge {slow:.2}"
        );
    }
}
