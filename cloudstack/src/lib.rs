//! vr-cloudstack: the CloudStack VR push format adapter (see `cloudstack-format.md`): pure
//! translation of `"type"`-tagged payloads into native sections of the shared model
//! (`vr-model`). The agent calls it; it never calls the agent.
//!
//! - [`parse_payload`]: strict parse (JSON path + value in every error, secrets redacted) and
//!   full validation of one payload. The type comes from `"type"`, never from a file name.
//! - [`parse_aggregate`]: the `VR-<uuid>.cfg` container, every part parsed and validated.
//! - [`merge()`] / [`merge_aggregate`]: CloudStack's per-type semantics on top of a
//!   [`DesiredState`]. An aggregate merges all parts into one state or fails whole.
//!
//! Later-wave types (and IPv6 firewall rules and IPv6 guest fields) are validated and kept in
//! `state.cloudstack.pending[type][identity]`; [`Merged::not_yet_applied`] names them (and
//! [`Merged::not_applied`] with their features, for the engine, which knows no CloudStack type)
//! so the caller answers "accepted, not yet applied" for that concern. The CloudStack-style
//! `ospf` push becomes the native `ospf` section ([`ospf`]). Their secrets live only in the
//! state file (0600); every view of them goes through the agent's redacted view, which
//! hides them by type (see [`secrets`]).
//!
//! Decisions worth knowing:
//! - Unknown fields: logged (path only) and ignored in every CloudStack payload, since
//!   CloudStack adds fields between releases; `cmd_line` keeps every key. The native format
//!   and this agent's own `ospf` push type deny them.
//! - NICs: `vif_mac_address`/`mac_address` is looked up in the caller's [`LocalNics`] first,
//!   then `eth<nic_dev_id>` or the payload's `device` is used. An `ips` removal needs no NIC:
//!   the address is removed wherever it is. A public NIC whose last address is removed goes.
//! - `cmdline` defines the control, guest and first public NIC addresses by router type
//!   (`router`: eth0 guest, eth1 control, eth2 public (+ eth3.. public); `vpcrouter`: eth0
//!   control, eth1 public; `dhcpsrvr`: eth0 guest with `gateway`, eth1 control); a re-pushed
//!   cmdline withdraws the addresses the previous one defined and this one does not.
//! - Source NAT: the `ips` entry with `source_nat` binds its device; on an isolated `router`
//!   the guest networks are its `source_cidrs` (added/removed by `guestnetwork`), elsewhere
//!   empty (every source). Removing a guest network also drops that tier's ACL.
//! - Firewall: the egress rule CloudStack sends with protocol `all` and no source CIDR carries
//!   the network's default policy (as `configure.py` treats it), so it sets `default_allow`
//!   instead of becoming a rule. A changed rule keeping its id is updated.
//! - Port forwards and static NAT get the `device` holding their public IP at merge
//!   time (absent when no NIC holds it yet: the rule then matches on any interface).

pub mod aggregate;
pub mod bgp;
pub mod check;
pub mod convert;
pub mod dhcp;
pub mod forward_delta;
pub mod forward_fast;
pub mod forward_index;
pub mod forward_memo;
pub mod guest_ranges;
pub mod ha;
pub mod ipv6;
pub mod later;
pub mod lb;
pub mod merge;
pub mod monitor;
pub mod not_applied;
pub mod ospf;
pub mod quick_read;
pub mod ravpn;
pub mod routed;
pub mod rule_spans;
pub mod rules;
pub mod s2s;
pub mod scripts;
pub mod types;
pub mod vmdata;

/// The stored later-wave structs and their typed secret handling live in the model (the
/// state file's redacted view needs them); re-exported under their old paths.
pub use vr_model::{later_types, secrets};

// The model's modules under the names the adapter's files use (`crate::error::Invalid`, ...).
use vr_model::{error, excerpt, parse, state, validate};

use serde::Deserialize;

pub use aggregate::{is_aggregate, parse_aggregate, AggregateEntry};
pub use later::{LaterPayload, RawJson};
pub use merge::resolve_nic;
pub use types::*;

use crate::error::{FieldError, Invalid};
use crate::parse::{parse_lenient, parse_strict};
use crate::state::DesiredState;
pub use vr_model::LocalNics;

/// One parsed and validated CloudStack payload.
#[derive(Debug, Clone)]
pub enum Payload {
    Ips(IpAssociation),
    Cmdline(CmdLine),
    GuestNetwork(GuestNetwork),
    ForwardRules(ForwardRules),
    StaticNatRules(StaticNatRules),
    FirewallRules(FirewallRules),
    Ipv6FirewallRules(FirewallRules),
    NetworkAcl(NetworkAcl),
    Site2SiteVpn(Site2SiteVpn),
    StaticRoutes(StaticRoutes),
    /// CloudStack-style `{"type":"ospf",...}`, mapped onto the native section by [`ospf`] at
    /// merge time (it needs the state's transit NIC networks).
    Ospf(RawJson),
    /// A later-wave type: validated and stored, not applied.
    Later(LaterPayload),
}

impl Payload {
    /// The CloudStack `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Ips(_) => "ips",
            Payload::Cmdline(_) => "cmdline",
            Payload::GuestNetwork(_) => "guestnetwork",
            Payload::ForwardRules(_) => "forwardrules",
            Payload::StaticNatRules(_) => "staticnatrules",
            Payload::FirewallRules(_) => "firewallrules",
            Payload::Ipv6FirewallRules(_) => "ipv6firewallrules",
            Payload::NetworkAcl(_) => "networkacl",
            Payload::Site2SiteVpn(_) => "site2sitevpn",
            Payload::StaticRoutes(_) => "staticroutes",
            Payload::Ospf(_) => "ospf",
            Payload::Later(p) => p.kind,
        }
    }
}

/// The result of a merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub state: DesiredState,
    /// Concerns stored in `state.cloudstack.pending` but not applied by this agent version
    /// (CloudStack type names, plus `guestnetwork-ipv6`), without duplicates, in push order.
    pub not_yet_applied: Vec<&'static str>,
}

impl Merged {
    /// [`Merged::not_yet_applied`] as the engine reports it: each kind with its feature.
    pub fn not_applied(&self) -> Vec<vr_model::NotApplied> {
        self.not_yet_applied
            .iter()
            .map(|k| not_applied::not_applied(k))
            .collect()
    }
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    kind: Option<TypeName>,
}

/// The `"type"` of a payload: its name, or only the fact that it is no string (a 16 MiB
/// array there is skipped, not built).
enum TypeName {
    Name(String),
    NotAString,
}

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TypeName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a payload type")
            }
            fn visit_str<E>(self, v: &str) -> Result<TypeName, E> {
                Ok(TypeName::Name(v.to_string()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<TypeName, E> {
                Ok(TypeName::NotAString)
            }
            fn visit_i64<E>(self, _: i64) -> Result<TypeName, E> {
                Ok(TypeName::NotAString)
            }
            fn visit_u64<E>(self, _: u64) -> Result<TypeName, E> {
                Ok(TypeName::NotAString)
            }
            fn visit_f64<E>(self, _: f64) -> Result<TypeName, E> {
                Ok(TypeName::NotAString)
            }
            fn visit_unit<E>(self) -> Result<TypeName, E> {
                Ok(TypeName::NotAString)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<TypeName, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(TypeName::NotAString)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<TypeName, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(TypeName::NotAString)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses and validates one payload.
///
/// CloudStack adds fields to its payloads between releases: a field this agent does not know
/// is logged (its path, never its value) and ignored, so that a management-server upgrade
/// does not make every push fail. Every known field is still strictly typed and validated, and
/// the native format keeps denying unknown fields.
pub fn parse_payload(text: &str) -> Result<Payload, Invalid> {
    let probe: Probe = parse_lenient(text)?.0;
    let kind = match probe.kind {
        Some(TypeName::Name(s)) => s,
        Some(TypeName::NotAString) => {
            let v = crate::excerpt::value_at(text, "type").unwrap_or_default();
            return Err(FieldError::new("type", v, "type must be a string").into());
        }
        None => return Err(FieldError::new("type", "", "missing type").into()),
    };
    let mut ignored = Vec::new();
    let ign = &mut ignored;
    let p = match kind.as_str() {
        "ips" => Payload::Ips(lenient(text, ign)?),
        "cmdline" => Payload::Cmdline(lenient(text, ign)?),
        "guestnetwork" => Payload::GuestNetwork(lenient(text, ign)?),
        "forwardrules" => Payload::ForwardRules(lenient(text, ign)?),
        "staticnatrules" => Payload::StaticNatRules(lenient(text, ign)?),
        "firewallrules" => Payload::FirewallRules(lenient(text, ign)?),
        "ipv6firewallrules" => Payload::Ipv6FirewallRules(lenient(text, ign)?),
        "networkacl" => Payload::NetworkAcl(lenient(text, ign)?),
        "site2sitevpn" => Payload::Site2SiteVpn(lenient(text, ign)?),
        "staticroutes" => Payload::StaticRoutes(lenient(text, ign)?),
        "ospf" => {
            // Not a CloudStack payload but this agent's own CloudStack-style type: strict typed
            // parse first (paths and values in errors), then kept as JSON.
            let _: ospf::CloudStackOspf = parse_strict(text)?;
            Payload::Ospf(RawJson(parse_strict(text)?))
        }
        other => match later::parse(other, text) {
            Some(r) => {
                let (p, later_ignored) = r?;
                ign.extend(later_ignored);
                Payload::Later(p)
            }
            None => {
                return Err(FieldError::new(
                    "type",
                    check::q(other),
                    "unknown CloudStack payload type",
                )
                .into())
            }
        },
    };
    validate(&p)?;
    log_ignored(p.kind(), &ignored);
    Ok(p)
}

fn lenient<T: serde::de::DeserializeOwned>(
    text: &str,
    ignored: &mut Vec<String>,
) -> Result<T, Invalid> {
    let (v, ign) = parse_lenient(text)?;
    ignored.extend(ign);
    Ok(v)
}

/// The envelope fields every payload carries, which the later-wave structs do not model.
const ENVELOPE: &[&str] = &["type", "delete_from_processed_cache"];

/// Logs the fields ignored in a payload: their paths only (a value may be a secret).
pub fn log_ignored(kind: &str, ignored: &[String]) {
    let fields: Vec<&str> = ignored
        .iter()
        .map(String::as_str)
        .filter(|f| !ENVELOPE.contains(f))
        .collect();
    if !fields.is_empty() {
        tracing::warn!(
            payload = kind,
            fields = %fields.join(", "),
            "ignored fields this agent does not know"
        );
    }
}

/// Every value check of a payload that needs no state.
pub fn validate(p: &Payload) -> Result<(), Invalid> {
    match p {
        Payload::Ips(x) => convert::ips(x).map(drop),
        Payload::Cmdline(x) => convert::cmdline(x).map(drop),
        Payload::GuestNetwork(x) => convert::guest(x).map(drop),
        Payload::ForwardRules(x) => convert::forwards(x).map(drop),
        Payload::StaticNatRules(x) => convert::static_nats(x).map(drop),
        Payload::FirewallRules(x) => convert::firewall(x).map(drop),
        Payload::Ipv6FirewallRules(x) => convert::firewall6(x).map(drop),
        Payload::NetworkAcl(x) => convert::acl(x).map(drop),
        Payload::Site2SiteVpn(x) => convert::site2site(x).map(drop),
        Payload::StaticRoutes(x) => convert::static_routes(x).map(drop),
        Payload::Ospf(_) => Ok(()),
        Payload::Later(_) => Ok(()),
    }
}

/// The native `ospf` section of a CloudStack-style OSPF push (`None`: `enabled: false`).
/// `state` gives the transit NICs' networks.
pub fn ospf_section(
    raw: &RawJson,
    state: &DesiredState,
) -> Result<Option<vr_ospf::OspfSection>, Invalid> {
    let push: ospf::CloudStackOspf = serde_json::from_value(raw.0.clone())
        .map_err(|e| FieldError::new("(document)", "", e.to_string()))?;
    let prefixes_of = |dev: &str| -> Vec<ipnet::Ipv4Net> {
        state
            .interfaces
            .iter()
            .filter(|i| i.device == dev)
            .flat_map(|i| i.addresses.iter().copied())
            .collect()
    };
    ospf::from_cloudstack(&push, &prefixes_of).map_err(|errs| {
        Invalid(
            errs.into_iter()
                .map(|e| FieldError::new(e.path, e.value, e.reason))
                .collect(),
        )
    })
}

/// Merges one payload on top of `state`. Nothing is changed on error.
pub fn merge(state: &DesiredState, payload: &Payload, nics: &LocalNics) -> Result<Merged, Invalid> {
    let mut next = state.clone();
    let mut nya = Vec::new();
    merge::merge_into(&mut next, payload, nics, &mut nya)?;
    routed::apply(&mut next);
    next.allocate_policy_indexes();
    Ok(Merged {
        state: next,
        not_yet_applied: nya,
    })
}

/// Merges a container's parts in order into one state; any failing part fails the whole.
pub fn merge_aggregate(
    state: &DesiredState,
    entries: &[AggregateEntry],
    nics: &LocalNics,
) -> Result<Merged, Invalid> {
    let mut next = state.clone();
    let mut nya: Vec<&'static str> = Vec::new();
    let mut errs = Vec::new();
    for (k, entry) in entries.iter().enumerate() {
        let mut part_nya = Vec::new();
        match merge::merge_into(&mut next, &entry.payload, nics, &mut part_nya) {
            Ok(()) => nya.extend(part_nya),
            Err(Invalid(es)) => errs.extend(
                es.into_iter()
                    .map(|e| aggregate::in_part(k, &entry.file, entry.line, e)),
            ),
        }
    }
    if !errs.is_empty() {
        return Err(Invalid(errs));
    }
    let mut seen = std::collections::BTreeSet::new();
    nya.retain(|k| seen.insert(*k));
    routed::apply(&mut next);
    next.allocate_policy_indexes();
    Ok(Merged {
        state: next,
        not_yet_applied: nya,
    })
}

pub use secrets::is_secret_cmdline_key;

#[cfg(test)]
mod tests;

/// The agent's redacted views (`vr_agent::redact`), for the tests of what the adapter stores.
#[cfg(test)]
mod redact {
    pub fn redacted<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Value {
        vr_secret::redacting(|| serde_json::to_value(value).unwrap_or(serde_json::Value::Null))
    }

    pub fn secrets_of<T: serde::Serialize + ?Sized>(value: &T) -> Vec<String> {
        vr_secret::collecting(|| serde_json::to_value(value).map(drop)).1
    }
}
