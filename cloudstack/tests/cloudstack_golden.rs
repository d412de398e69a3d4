//! Golden tests of the CloudStack adapter: each case applies CloudStack payloads (files under
//! `tests/cloudstack/`, realistic values as CloudStack sends them) in order onto an empty
//! state and compares the merged native state with `tests/cloudstack/golden/<case>.json`.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-cloudstack --test cloudstack_golden`.
//! The push path's handling of containers is tested in `agent/tests/cloudstack_push.rs`.

use std::path::{Path, PathBuf};

use vr_cloudstack::{
    is_aggregate, merge, merge_aggregate, parse_aggregate, parse_payload, LocalNics,
};
use vr_model::state::DesiredState;

/// NICs of the isolated router (r-4-VM) and of the VPC router (r-7-VM) by MAC.
fn nics(vpc: bool) -> LocalNics {
    let list: &[(&str, &str)] = if vpc {
        &[
            ("0e:00:a9:fe:01:5a", "eth0"),
            ("06:7c:12:00:00:20", "eth1"),
            ("02:00:56:36:00:02", "eth2"),
            ("02:00:41:00:00:07", "eth4"),
        ]
    } else {
        &[
            ("02:00:3b:6e:00:05", "eth0"),
            ("0e:00:a9:fe:03:2c", "eth1"),
            ("06:9a:3c:00:00:12", "eth2"),
            ("06:9a:3c:00:00:13", "eth3"),
            // Hot-plugged NIC the kernel named differently from CloudStack's device id.
            ("02:00:3b:6e:01:07", "eth4"),
        ]
    };
    list.iter()
        .map(|(m, n)| (m.parse().unwrap(), n.to_string()))
        .collect()
}

const ISO: &[&str] = &["cmdline_router.json", "ips_add.json"];
const VPC: &[&str] = &[
    "cmdline_vpcrouter.json",
    "vpc_ips_source_nat.json",
    "vpc_guestnetwork_add.json",
];

/// (case, vpc router?, base files, case files)
const CASES: &[(&str, bool, &[&str], &[&str])] = &[
    ("cmdline_router", false, &[], &["cmdline_router.json"]),
    ("cmdline_vpcrouter", true, &[], &["cmdline_vpcrouter.json"]),
    ("cmdline_dhcpsrvr", false, &[], &["cmdline_dhcpsrvr.json"]),
    ("ips_add", false, ISO, &[]),
    ("ips_remove", false, ISO, &["ips_remove.json"]),
    (
        "guestnetwork_add",
        false,
        ISO,
        &["guestnetwork_add.json", "guestnetwork_second.json"],
    ),
    (
        "guestnetwork_remove",
        false,
        ISO,
        &[
            "guestnetwork_add.json",
            "guestnetwork_second.json",
            "guestnetwork_remove.json",
        ],
    ),
    ("forwardrules_add", false, ISO, &["forwardrules_add.json"]),
    (
        "forwardrules_revoke",
        false,
        ISO,
        &["forwardrules_add.json", "forwardrules_revoke.json"],
    ),
    (
        "vpc_forwardrules_add",
        true,
        VPC,
        &["vpc_forwardrules_add.json"],
    ),
    ("staticnat_add", false, ISO, &["staticnat_add.json"]),
    (
        "staticnat_revoke",
        false,
        ISO,
        &["staticnat_add.json", "staticnat_revoke.json"],
    ),
    (
        "firewall_add",
        false,
        ISO,
        &["firewall_add.json", "egress_add.json"],
    ),
    (
        "firewall_revoke",
        false,
        ISO,
        &[
            "firewall_add.json",
            "egress_add.json",
            "firewall_revoke.json",
            "egress_revoke.json",
        ],
    ),
    // CloudStack may send a revoked rule as its id alone.
    (
        "egress_revoke_id_only",
        false,
        ISO,
        &[
            "firewall_add.json",
            "egress_add.json",
            "egress_revoke_id_only.json",
        ],
    ),
    // A newer management server adds fields: they are ignored (and logged), the rest applies.
    (
        "newer_cloudstack_fields",
        false,
        ISO,
        &["newer_fields_forwardrules.json"],
    ),
    ("ipv6firewall_add", true, VPC, &["ipv6firewall_add.json"]),
    (
        "ipv6firewall_revoke",
        true,
        VPC,
        &["ipv6firewall_add.json", "ipv6firewall_revoke.json"],
    ),
    ("vpc_guestnetwork_add", true, VPC, &[]),
    (
        "vpc_guestnetwork_remove",
        true,
        VPC,
        &["vpc_networkacl.json", "vpc_guestnetwork_remove.json"],
    ),
    ("vpc_networkacl", true, VPC, &["vpc_networkacl.json"]),
    (
        "vpc_networkacl_replace",
        true,
        VPC,
        &["vpc_networkacl.json", "vpc_networkacl_replace.json"],
    ),
    (
        "vpc_s2s_add",
        true,
        VPC,
        &["vpc_s2s_add.json", "vpc_s2s_second.json"],
    ),
    (
        "vpc_s2s_remove",
        true,
        VPC,
        &[
            "vpc_s2s_add.json",
            "vpc_s2s_second.json",
            "vpc_s2s_remove.json",
        ],
    ),
    (
        "vpc_staticroutes_add",
        true,
        VPC,
        &["vpc_ips_private_gw.json", "vpc_staticroutes_add.json"],
    ),
    (
        "vpc_staticroutes_revoke",
        true,
        VPC,
        &[
            "vpc_ips_private_gw.json",
            "vpc_staticroutes_add.json",
            "vpc_staticroutes_revoke.json",
        ],
    ),
    ("bgppeers_add", false, ISO, &["bgppeers_add.json"]),
    (
        "bgppeers_none",
        false,
        ISO,
        &["bgppeers_add.json", "bgppeers_none.json"],
    ),
    ("vpc_bgppeers", true, VPC, &["vpc_bgppeers.json"]),
    (
        "later_pending",
        false,
        ISO,
        &["later_dhcpentry.json", "later_vmpassword.json"],
    ),
    (
        "aggregate",
        false,
        &["cmdline_router.json"],
        &["VR-3c2f7d1e-aggregate.cfg"],
    ),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloudstack")
}

/// Applies `files` in order; returns the state and every "not yet applied" concern.
fn apply(files: &[&str], nics: &LocalNics) -> (DesiredState, Vec<&'static str>) {
    let mut state = DesiredState::default();
    let mut nya = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(dir().join(f)).unwrap();
        let merged = if is_aggregate(&text) {
            let entries = parse_aggregate(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
            merge_aggregate(&state, &entries, nics)
        } else {
            let p = parse_payload(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
            merge(&state, &p, nics)
        }
        .unwrap_or_else(|e| panic!("{f}: {e}"));
        state = merged.state;
        nya.extend(merged.not_yet_applied);
    }
    (state, nya)
}

#[test]
fn golden_cases() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut failed = Vec::new();
    for (case, vpc, base, files) in CASES {
        let all: Vec<&str> = base.iter().chain(files.iter()).copied().collect();
        let (state, nya) = apply(&all, &nics(*vpc));
        // Whatever CloudStack sends must also pass the agent's whole-state validation.
        vr_model::validate::validate_state(&state).unwrap_or_else(|e| panic!("{case}: {e}"));
        let sections = [
            vr_nat::validate::validate_nat(&state.nat),
            vr_nat::validate::validate_firewall(&state.firewall),
            vr_nat::validate::validate_acls(&state.acls),
        ];
        for r in sections {
            if let Err(e) = r {
                panic!(
                    "{case}: {}",
                    e.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
        }
        let mut out = serde_json::json!({ "state": state, "not_yet_applied": nya });
        if !state.cloudstack.pending.is_empty() {
            // The agent's redacted view (`vr_agent::redact::redacted`).
            let redacted = vr_secret::redacting(|| serde_json::to_value(&state.cloudstack));
            out["redacted_pending"] = redacted.unwrap()["pending"].clone();
        }
        let text = serde_json::to_string_pretty(&out).unwrap() + "\n";
        let path = dir().join("golden").join(format!("{case}.json"));
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            failed.push(format!("{case} (see {})", path.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "golden mismatch, rerun with UPDATE_GOLDEN=1 and review: {failed:?}"
    );
}

#[test]
fn invalid_third_part_rejects_the_container() {
    let text = std::fs::read_to_string(dir().join("VR-invalid-third-part.cfg")).unwrap();
    let err = parse_aggregate(&text).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(
        err.0[0].path,
        "aggregate[2].rules[1].destination_port_range"
    );
    assert_eq!(err.0[0].value, "\"80:91\"");
    assert!(err.0[0].reason.contains("length differs"), "{err}");
}

#[test]
fn repeating_a_push_changes_nothing() {
    for (case, vpc, base, files) in CASES {
        let all: Vec<&str> = base.iter().chain(files.iter()).copied().collect();
        let nics = nics(*vpc);
        let (state, _) = apply(&all, &nics);
        let Some(last) = all.last() else { continue };
        let text = std::fs::read_to_string(dir().join(last)).unwrap();
        let again = if is_aggregate(&text) {
            merge_aggregate(&state, &parse_aggregate(&text).unwrap(), &nics)
        } else {
            merge(&state, &parse_payload(&text).unwrap(), &nics)
        }
        .unwrap();
        assert_eq!(
            again.state, state,
            "{case}: replaying {last} is not idempotent"
        );
    }
}

#[test]
fn a_revoke_by_id_alone_equals_the_full_revoke() {
    let n = nics(false);
    let full: Vec<&str> = ISO
        .iter()
        .chain(&["firewall_add.json", "egress_add.json", "egress_revoke.json"])
        .copied()
        .collect();
    let by_id: Vec<&str> = ISO
        .iter()
        .chain(&[
            "firewall_add.json",
            "egress_add.json",
            "egress_revoke_id_only.json",
        ])
        .copied()
        .collect();
    assert_eq!(apply(&full, &n).0.firewall, apply(&by_id, &n).0.firewall);
}
