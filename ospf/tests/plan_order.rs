//! Every transition between 36 OSPF configurations (network statements or per-interface areas,
//! an interface in one area, another or none, two router ids, md5 keys added, changed,
//! removed) is planned, and the plan is played against a model of FRR 8.4's refusals:
//! `ip ospf area B` while area A is set ("Must remove previous area config"), `ip ospf area`
//! while `network` statements exist ("Please remove all network commands first") and `network`
//! while an interface has an area ("Please remove all ip ospf area x.x.x.x commands first").
//! No plan may be refused, each must leave exactly the desired lines, and a router-id change
//! of a running instance must end with `clear ip ospf process`.

use std::collections::BTreeMap;

use vr_ospf::apply::{parse_blocks, plan, Blocks};
use vr_ospf::render::{ospf_blocks, Dialect};
use vr_ospf::OspfSection;

fn section(if_areas: bool, eth4: Option<u8>, rid: u8, key: Option<&str>) -> OspfSection {
    let area = |a: u8| {
        if if_areas {
            format!(r#","area":"0.0.0.{a}""#)
        } else {
            String::new()
        }
    };
    let auth = key
        .map(|k| format!(r#","authentication":{{"type":"md5","key_id":1,"password":"{k}"}}"#))
        .unwrap_or_default();
    let mut interfaces = vec![
        format!(r#"{{"device":"eth3","cost":10{}{auth}}}"#, area(0)),
        format!(r#"{{"device":"eth0","passive":true{}}}"#, area(0)),
    ];
    let mut networks = vec![
        r#"{"prefix":"172.16.0.0/30","area":"0.0.0.0"}"#.to_string(),
        r#"{"prefix":"10.1.1.0/24","area":"0.0.0.0"}"#.to_string(),
    ];
    let mut areas = Vec::new();
    if let Some(a) = eth4 {
        interfaces.push(format!(
            r#"{{"device":"eth4","network_type":"point-to-point"{}}}"#,
            area(a)
        ));
        networks.push(format!(
            r#"{{"prefix":"172.16.1.0/30","area":"0.0.0.{a}"}}"#
        ));
        areas.push(format!(r#"{{"id":"0.0.0.{a}"}}"#));
    }
    if if_areas {
        networks.clear();
    }
    let s: OspfSection = serde_json::from_str(&format!(
        r#"{{"router_id":"192.0.2.{rid}","areas":[{}],"interfaces":[{}],"networks":[{}]}}"#,
        areas.join(","),
        interfaces.join(","),
        networks.join(",")
    ))
    .unwrap();
    vr_ospf::validate_ospf(&s).unwrap();
    s
}

/// FRR's OSPF lines as the model holds them (block -> lines, in order of arrival).
type Frr = BTreeMap<String, Vec<String>>;

fn any_if_area(frr: &Frr) -> bool {
    frr.iter().any(|(h, ls)| {
        h.starts_with("interface ") && ls.iter().any(|l| l.starts_with("ip ospf area "))
    })
}

/// Plays `script` (as `vtysh -f` reads it) on `frr`; Err(refusal) at the first line FRR
/// 8.4 refuses.
fn play(frr: &mut Frr, script: &str) -> Result<(), String> {
    const SINGLE: &[&str] = &[
        "ospf router-id ",
        "ip ospf cost ",
        "ip ospf authentication-key ",
    ];
    let mut current: Option<String> = None;
    for raw in script.lines() {
        let line = raw.trim();
        if !raw.starts_with(' ') {
            if line == "exit" {
                current = None;
            } else if let Some(h) = line.strip_prefix("no ") {
                assert_eq!(h, "router ospf", "unexpected top-level line {line}");
                frr.remove(h);
            } else {
                current = Some(line.to_string());
                frr.entry(line.to_string()).or_default();
            }
            continue;
        }
        let h = current.clone().expect("line outside a block");
        if let Some(what) = line.strip_prefix("no ") {
            let lines = frr.get_mut(&h).unwrap();
            let before = lines.len();
            if let Some(id) = what.strip_prefix("ip ospf message-digest-key ") {
                lines.retain(|l| !l.starts_with(&format!("ip ospf message-digest-key {id} ")));
            } else {
                lines.retain(|l| l != what);
            }
            if lines.len() == before {
                return Err(format!("{h}: `{line}` removes nothing"));
            }
            continue;
        }
        if line.starts_with("ip ospf area ") {
            let lines = &frr[&h];
            if lines
                .iter()
                .any(|l| l.starts_with("ip ospf area ") && l != line)
            {
                return Err(format!("{h}: {line}: Must remove previous area config"));
            }
            if frr
                .get("router ospf")
                .is_some_and(|r| r.iter().any(|l| l.starts_with("network ")))
            {
                return Err(format!(
                    "{h}: {line}: Please remove all network commands first"
                ));
            }
        }
        if line.starts_with("network ") && any_if_area(frr) {
            return Err(format!(
                "{line}: Please remove all ip ospf area x.x.x.x commands first"
            ));
        }
        let lines = frr.get_mut(&h).unwrap();
        if let Some(k) = SINGLE.iter().find(|k| line.starts_with(*k)) {
            lines.retain(|l| !l.starts_with(k));
        }
        lines.push(line.to_string());
    }
    Ok(())
}

fn normalized(b: &Blocks) -> Frr {
    b.iter()
        .map(|(h, ls)| {
            let mut ls = ls.clone();
            ls.sort();
            (h.clone(), ls)
        })
        .filter(|(h, ls)| !ls.is_empty() || h.starts_with("router "))
        .collect()
}

fn as_text(frr: &Frr) -> String {
    let mut out = String::new();
    for (h, ls) in frr {
        out.push_str(&format!("{h}\n"));
        for l in ls {
            out.push_str(&format!(" {l}\n"));
        }
        out.push_str("exit\n");
    }
    out
}

#[test]
fn every_transition_is_taken_by_frr_in_the_planned_order() {
    let mut configs = Vec::new();
    for if_areas in [false, true] {
        for eth4 in [None, Some(1), Some(2)] {
            for rid in [1, 11] {
                for key in [None, Some("k1"), Some("k2")] {
                    configs.push(ospf_blocks(
                        &section(if_areas, eth4, rid, key),
                        Dialect::Frr,
                    ));
                }
            }
        }
    }
    configs.push(String::new());
    let mut plans = 0;
    for from in &configs {
        for to in &configs {
            let mut frr = normalized(&parse_blocks(from));
            let old_id = vr_ospf::blocks::router_id(&parse_blocks(from));
            let p = plan(from, old_id, to);
            if let Err(e) = play(&mut frr, &p.script()) {
                panic!("FRR refuses the plan: {e}\nfrom:\n{from}\nto:\n{to}\nplan:\n{p}");
            }
            let want = normalized(&parse_blocks(to));
            let got: Frr = frr
                .into_iter()
                .map(|(h, mut ls)| {
                    ls.sort();
                    (h, ls)
                })
                .filter(|(h, ls)| !ls.is_empty() || h.starts_with("router "))
                .collect();
            assert_eq!(
                as_text(&got),
                as_text(&want),
                "from:\n{from}\nto:\n{to}\nplan:\n{p}"
            );
            let new_id = vr_ospf::blocks::router_id(&parse_blocks(to));
            let running_instance = parse_blocks(from).contains_key("router ospf");
            assert_eq!(
                p.clear_process,
                running_instance && new_id.is_some() && new_id != old_id,
                "from:\n{from}\nto:\n{to}\nplan:\n{p}"
            );
            assert!(
                plan(&as_text(&got), new_id, to).is_empty(),
                "not idempotent:\n{to}"
            );
            plans += 1;
        }
    }
    println!("{plans} transitions planned and taken in order");
}
