//! Planner tests: one golden file per case in `golden/` (the plan as an operator reads it);
//! regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-agent tunables`.

use std::path::PathBuf;

use super::*;
use crate::state::StateDocument;

const MIB: u64 = 1024 * 1024;

fn router(extra: &str) -> DesiredState {
    let doc: StateDocument = serde_json::from_str(&format!(
        r#"{{"schema":1,"interfaces":[
            {{"device":"eth0","role":"control","addresses":["169.254.3.4/16"]}},
            {{"device":"eth1","role":"guest","addresses":["10.1.1.1/24"]}},
            {{"device":"eth2","role":"public","addresses":["192.0.2.10/24"],"gateway":"192.0.2.1"}},
            {{"device":"eth3","role":"public","addresses":["198.51.100.10/24"]}}
        ]{extra}}}"#
    ))
    .expect("test document");
    DesiredState::default().merge_native(doc)
}

/// A fresh Debian VM: kernel defaults everywhere, conntrack loaded.
fn fresh(facts: Facts) -> Snapshot {
    let mut values = BTreeMap::new();
    let mut put = |p: &str, v: &str| values.insert(p.to_string(), v.to_string());
    put("net/ipv4/ip_forward", "0");
    for dev in ["all", "default", "lo", "eth0", "eth1", "eth2", "eth3"] {
        put(&format!("net/ipv4/conf/{dev}/rp_filter"), "0");
        put(&format!("net/ipv6/conf/{dev}/accept_ra"), "1");
    }
    if facts.conntrack_loaded {
        put(
            "net/netfilter/nf_conntrack_tcp_timeout_established",
            "432000",
        );
        put("net/netfilter/nf_conntrack_udp_timeout", "30");
        put("net/netfilter/nf_conntrack_udp_timeout_stream", "120");
        put("net/netfilter/nf_conntrack_max", "4096");
        put("net/netfilter/nf_conntrack_buckets", "4096");
    }
    Snapshot { facts, values }
}

fn vm(mem_mib: u64) -> Facts {
    Facts {
        mem_total_bytes: mem_mib * MIB,
        init_netns: true,
        conntrack_loaded: true,
    }
}

fn golden(name: &str, plan: &TunablesPlan) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/tunables/golden")
        .join(format!("{name}.txt"));
    let text = plan.to_string();
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).expect("write golden");
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(
        text,
        want,
        "{} differs (UPDATE_GOLDEN=1 to accept)",
        path.display()
    );
}

#[test]
fn a_fresh_512_mib_router_gets_forwarding_rp_filter_and_conntrack_sized_from_memory() {
    let p = plan(&router(""), &KernelSection::default(), &fresh(vm(512)));
    golden("fresh-512mib", &p);
    assert!(p
        .writes
        .iter()
        .any(|w| w.path == "net/ipv4/ip_forward" && w.to == "1"));
}

#[test]
fn in_a_child_namespace_the_global_sizes_are_noted_not_written() {
    let facts = Facts {
        init_netns: false,
        ..vm(256)
    };
    let p = plan(&router(""), &KernelSection::default(), &fresh(facts));
    golden("child-namespace", &p);
    assert!(!p
        .writes
        .iter()
        .any(|w| w.path.ends_with("nf_conntrack_max")));
}

#[test]
fn the_push_beats_the_config_which_beats_the_default() {
    let config = KernelSection {
        conntrack_max: Some(100_000),
        udp_timeout: Some(45),
        ..Default::default()
    };
    let s = router(r#","kernel":{"conntrack-max":300000,"tcp-established-timeout":7200}"#);
    let p = plan(&s, &config, &fresh(vm(256)));
    golden("push-and-config-sizing", &p);
}

#[test]
fn conntrack_not_loaded_yet_is_a_note() {
    let facts = Facts {
        conntrack_loaded: false,
        ..vm(256)
    };
    golden(
        "conntrack-not-loaded",
        &plan(&router(""), &KernelSection::default(), &fresh(facts)),
    );
}

#[test]
fn a_matching_system_plans_nothing_and_an_idle_agent_owns_nothing() {
    let s = router("");
    let mut now = fresh(vm(512));
    for w in wanted(&s, &KernelSection::default(), &now.facts).writes {
        now.values.insert(w.path, w.to);
    }
    assert!(plan(&s, &KernelSection::default(), &now).writes.is_empty());
    let idle = plan(
        &DesiredState::default(),
        &KernelSection::default(),
        &fresh(vm(512)),
    );
    assert_eq!(idle, TunablesPlan::default());
}

#[test]
fn a_nic_not_there_yet_is_noted() {
    let s = router("");
    let mut now = fresh(vm(512));
    now.values.retain(|k, _| !k.contains("/eth3/"));
    let p = plan(&s, &KernelSection::default(), &now);
    assert!(p.notes.iter().any(|n| n.contains("eth3")), "{p}");
    assert!(!p.writes.iter().any(|w| w.path.contains("eth3")));
}

#[test]
fn conntrack_size_follows_memory_within_bounds() {
    assert_eq!(conntrack_max_for(256 * MIB), CONNTRACK_MIN);
    assert_eq!(conntrack_max_for(512 * MIB), 131_072);
    assert_eq!(conntrack_max_for(2048 * MIB), 524_288);
    assert_eq!(conntrack_max_for(1 << 50), CONNTRACK_MAX);
}

#[test]
fn buckets_are_planned_as_the_kernel_rounds_them() {
    assert_eq!(kernel_buckets(122_935), 123_392);
    assert_eq!(kernel_buckets(65_536), 65_536);
    // A 1 GiB VM (1015 MiB usable): the planned hash size is one the kernel keeps as is.
    let facts = Facts {
        mem_total_bytes: 1015 * MIB,
        ..vm(0)
    };
    let p = plan(&router(""), &KernelSection::default(), &fresh(facts));
    let b = p
        .writes
        .iter()
        .find(|w| w.path.ends_with("nf_conntrack_buckets"))
        .expect("buckets planned");
    assert_eq!(b.to.parse::<u64>().unwrap() % 512, 0, "{p}");
}
