use super::*;

/// Compares `actual` with `golden/<name>` beside this file (`UPDATE_GOLDEN=1` rewrites it).
fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/usage/golden")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, want, "{} differs", path.display());
}

fn nic(dev: &str, addrs: &[&str]) -> Nic {
    Nic {
        device: dev.into(),
        addresses: addrs.iter().map(|s| s.to_string()).collect(),
    }
}

fn isolated() -> Spec {
    Spec::new(
        vec![
            nic("eth2", &["192.0.2.10", "192.0.2.11"]),
            nic("eth3", &["198.51.100.10"]),
        ],
        &["eth0".to_string()],
        None,
    )
}

/// What the kernel holds once `spec` is applied, with every counter at `bytes`.
fn applied(spec: &Spec, bytes: u64) -> Current {
    Current {
        counters: spec
            .all_counters()
            .into_iter()
            .map(|c| (c, bytes))
            .collect(),
        rules: rules(spec),
        hooked: true,
    }
}

#[test]
fn golden_scripts_isolated_and_vpc() {
    golden(
        "vr_stats_isolated.nft",
        &plan(None, &isolated()).to_string(),
    );
    let vpc = Spec::new(
        vec![nic("eth1", &["192.0.2.20"])],
        &["eth2".to_string()],
        Some("10.0.0.0/16"),
    );
    golden("vr_stats_vpc.nft", &plan(None, &vpc).to_string());
    let none = Spec::new(vec![nic("eth2", &["192.0.2.10"])], &[], None);
    assert_eq!(rules(&none).len(), 2);
    assert_eq!(none.counters_for(None).len(), 4);
}

#[test]
fn guest_nics_are_sorted_as_nft_prints_a_set() {
    let g = ["eth5".to_string(), "eth0".to_string(), "eth5".to_string()];
    let s = Spec::new(vec![nic("eth2", &[])], &g, None);
    assert_eq!(s.guests, Guests::Nics(vec!["eth0".into(), "eth5".into()]));
    assert!(rules(&s)[0].starts_with("iifname { \"eth0\", \"eth5\" } oifname \"eth2\""));
}

#[test]
fn a_nic_that_comes_adds_its_counters_and_rewrites_the_rules_only() {
    let before = Spec::new(vec![nic("eth2", &[])], &["eth0".to_string()], None);
    let p = plan(Some(&applied(&before, 7)), &isolated());
    let mut eth3 = counter_names("eth3").to_vec();
    eth3.sort();
    assert_eq!(p.create, eth3);
    assert!(p.delete.is_empty() && !p.hook && !p.remove);
    assert_eq!(p.rules.as_ref().map(Vec::len), Some(8));
    golden("vr_stats_nic_added.nft", &p.to_string());
    // Existing counters are never created again (that is what would zero them).
    assert!(!p.to_string().contains("add counter inet vr_stats eth2_"));
}

#[test]
fn a_nic_that_goes_deletes_its_counters_after_the_rules_naming_them() {
    let after = Spec::new(vec![nic("eth2", &[])], &["eth0".to_string()], None);
    let p = plan(Some(&applied(&isolated(), 7)), &after);
    let mut eth3 = counter_names("eth3").to_vec();
    eth3.sort();
    assert_eq!(p.delete, eth3);
    let text = p.to_string();
    let flush = text.find("flush chain inet vr_stats count").unwrap();
    let delete = text.find("delete counter").unwrap();
    assert!(flush < delete, "{text}");
}

#[test]
fn an_unchanged_table_plans_nothing_and_a_lost_hook_is_put_back_alone() {
    let spec = isolated();
    let mut cur = applied(&spec, 7);
    assert_eq!(plan(Some(&cur), &spec), Plan::default());
    assert_eq!(plan(Some(&cur), &spec).to_string(), "");
    cur.hooked = false;
    let p = plan(Some(&cur), &spec);
    assert_eq!((p.changes(), p.hook, p.rules.is_none()), (1, true, true));
    assert!(!p.to_string().contains("add counter") && !p.to_string().contains("count counter"));
}

#[test]
fn no_public_nic_means_no_table() {
    let empty = Spec::new(vec![], &["eth0".to_string()], None);
    assert_eq!(plan(None, &empty).changes(), 0);
    let p = plan(Some(&applied(&isolated(), 7)), &empty);
    assert_eq!(p.to_string(), "delete table inet vr_stats\n");
}

#[test]
fn counters_for_an_address_are_those_of_the_nic_holding_it_exactly() {
    let spec = isolated();
    assert_eq!(spec.counters_for(None).len(), 8);
    assert_eq!(
        spec.counters_for(Some("198.51.100.10")),
        counter_names("eth3")
    );
    assert!(spec.counters_for(Some("192.0.2.1")).is_empty());
    // Exact address, never a substring match (10.0.0.1 is not 110.0.0.1).
    let s = Spec::new(vec![nic("eth2", &["110.0.0.1"])], &[], None);
    assert!(s.counters_for(Some("10.0.0.1")).is_empty());
}

#[test]
fn current_from_nft_json() {
    let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
      {"table": {"family": "inet", "name": "vr_stats", "handle": 1}},
      {"counter": {"family": "inet", "name": "eth2_sent_fwd", "table": "vr_stats", "handle": 2, "packets": 4, "bytes": 336}},
      {"rule": {"family": "inet", "table": "vr_stats", "chain": "forward", "handle": 9, "expr": [{"jump": {"target": "count"}}]}},
      {"rule": {"family": "inet", "table": "vr_stats", "chain": "input", "handle": 10, "expr": [{"jump": {"target": "count"}}]}},
      {"rule": {"family": "inet", "table": "vr_stats", "chain": "input", "handle": 12, "expr": [{"jump": {"target": "count"}}]}}]}"#;
    let chain = "table inet vr_stats {\n\tchain count {\n\t\toifname \"eth2\" counter name \"eth2_sent_tcp\"\n\t}\n}\n";
    let c = parse_current(json, chain).unwrap();
    assert_eq!(c.counters["eth2_sent_fwd"], 336);
    // Two jumps from input are not one from output.
    assert!(!c.hooked);
    assert_eq!(c.rules, ["oifname \"eth2\" counter name \"eth2_sent_tcp\""]);
    let with_output = json
        .replace("handle\": 12, \"expr", "handle\": 12, \"x\": 0, \"expr")
        .replace(
            "\"chain\": \"input\", \"handle\": 12",
            "\"chain\": \"output\", \"handle\": 12",
        );
    assert!(parse_current(&with_output, chain).unwrap().hooked);
    assert!(parse_current("not json", "").is_err());
}
