//! The change from one `DesiredState` to the next, as the journal records it.
//!
//! A delta is a list of edits, each naming a field by its path (`nat.port_forwards`). Three
//! kinds of edit, chosen per field by the table below:
//!
//! - `set`: the field's new value, whole. For small sections and options (`ospf`, `kernel`,
//!   `ha_role`, ...).
//! - `splice`: for lists (port forwards, static NATs, firewall rules, DHCP hosts, ...). The
//!   elements the old and new list share at the front and at the back (compared with
//!   `PartialEq`, element by element) stay; the middle is replaced: `at` (the shared prefix),
//!   `remove` (how many old elements go), then the new middle elements. Generic, keeps the
//!   order, and makes a CloudStack push that re-sends a 10,000-rule list with one rule added a
//!   one-element record. A list the states share until a push changes it
//!   (`nat.port_forwards`, a [`vr_nat::Shared`]) is not compared at all while they share it.
//! - `map`: for maps keyed by guest address (metadata, pending passwords): the keys that went,
//!   and the entries that are new or changed.
//!
//! Fields whose old and new values are equal are not recorded at all, so the cost of a record
//! follows the change: comparing costs one `PartialEq` pass, serialising only what changed.
//!
//! The encoding keeps big values out of a second in-memory copy: the record is a header line
//! (`{"edits":[{"path":..,"op":..,"at":..,"remove":..,"len":N},..]}`, compact JSON, so it has
//! no raw newline) and then each edit's value, compact JSON of `len` bytes, one after the
//! other. Reading deserialises each value straight into its field's type.
//!
//! Every field of `DesiredState` must be in the table: [`every_field_is_journaled`] names them
//! all without `..`, so a field added to the model fails to compile here until it is added.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::state::DesiredState;

/// One edit of a record's header; its value follows the header, `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditHead {
    pub path: String,
    pub op: Op,
    /// `splice`: where the replaced middle starts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub at: usize,
    /// `splice`: how many old elements the middle held.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remove: usize,
    /// Bytes of the value.
    pub len: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The value is the field, whole.
    Set,
    /// The value is the list of new middle elements.
    Splice,
    /// The value is `[[removed keys], {new or changed entries}]`.
    Map,
}

/// A delta being encoded: the edits' heads and their values, back to back.
#[derive(Debug, Default)]
pub struct Encoded {
    pub edits: Vec<EditHead>,
    pub values: Vec<u8>,
}

impl Encoded {
    fn push<T: Serialize + ?Sized>(
        &mut self,
        path: &str,
        op: Op,
        at: usize,
        remove: usize,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let start = self.values.len();
        serde_json::to_writer(&mut self.values, value)?;
        self.edits.push(EditHead {
            path: path.to_string(),
            op,
            at,
            remove,
            len: self.values.len() - start,
        });
        Ok(())
    }
}

impl Encoded {
    /// The fields this delta changes (every field when it records them all).
    pub fn changed(&self) -> Changed {
        Changed(self.edits.iter().map(|e| e.path.clone()).collect())
    }
}

/// The fields (journal paths, such as `nat.port_forwards`) a push changes, as the journal's
/// delta found them: a field not listed is equal in the two states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed(Vec<String>);

impl Changed {
    /// Whether any of `paths` changed.
    pub fn any(&self, paths: &[&str]) -> bool {
        self.0.iter().any(|c| paths.contains(&c.as_str()))
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// A field recorded whole.
mod whole {
    use super::*;

    pub fn diff<T: PartialEq + Serialize>(
        out: &mut Encoded,
        path: &str,
        old: &T,
        new: &T,
        full: bool,
    ) -> Result<(), serde_json::Error> {
        if full || old != new {
            out.push(path, Op::Set, 0, 0, new)?;
        }
        Ok(())
    }

    pub fn apply<T: DeserializeOwned>(
        slot: &mut T,
        head: &EditHead,
        value: &[u8],
    ) -> Result<(), String> {
        match head.op {
            Op::Set => {
                *slot = serde_json::from_slice(value).map_err(|e| e.to_string())?;
                Ok(())
            }
            op => Err(format!("{op:?} on a whole field")),
        }
    }
}

/// A list recorded as a splice of its middle.
mod list {
    use super::*;

    pub fn diff<T: PartialEq + Serialize>(
        out: &mut Encoded,
        path: &str,
        old: &[T],
        new: &[T],
        full: bool,
    ) -> Result<(), serde_json::Error> {
        if full {
            return out.push(path, Op::Set, 0, 0, new);
        }
        let (prefix, suffix) = vr_nat::list_ends::common_ends(old, new);
        if prefix == old.len() && prefix == new.len() {
            return Ok(());
        }
        let middle = &new[prefix..new.len() - suffix];
        out.push(
            path,
            Op::Splice,
            prefix,
            old.len() - prefix - suffix,
            middle,
        )
    }

    pub fn apply<T: DeserializeOwned>(
        slot: &mut Vec<T>,
        head: &EditHead,
        value: &[u8],
    ) -> Result<(), String> {
        match head.op {
            Op::Set => {
                *slot = serde_json::from_slice(value).map_err(|e| e.to_string())?;
                Ok(())
            }
            Op::Splice => {
                let end = head
                    .at
                    .checked_add(head.remove)
                    .filter(|end| *end <= slot.len())
                    .ok_or_else(|| {
                        format!(
                            "splice at {} removing {} from a list of {}",
                            head.at,
                            head.remove,
                            slot.len()
                        )
                    })?;
                let middle: Vec<T> = serde_json::from_slice(value).map_err(|e| e.to_string())?;
                slot.splice(head.at..end, middle);
                Ok(())
            }
            Op::Map => Err("map edit on a list".into()),
        }
    }
}

/// A list shared between states ([`vr_nat::Shared`]) recorded as a splice like any list; two
/// states that still share it are equal without a comparison of its elements.
mod shared {
    use super::*;
    use vr_nat::Shared;

    pub fn diff<T: Eq + Serialize>(
        out: &mut Encoded,
        path: &str,
        old: &Shared<T>,
        new: &Shared<T>,
        full: bool,
    ) -> Result<(), serde_json::Error> {
        if !full && old.same_list(new) {
            return Ok(());
        }
        list::diff(out, path, old, new, full)
    }

    pub fn apply<T: Clone + DeserializeOwned>(
        slot: &mut Shared<T>,
        head: &EditHead,
        value: &[u8],
    ) -> Result<(), String> {
        list::apply(slot, head, value)
    }
}

/// A map recorded as its removed keys and its new or changed entries.
mod map {
    use super::*;

    pub fn diff<K: Ord + Serialize, V: PartialEq + Serialize>(
        out: &mut Encoded,
        path: &str,
        old: &BTreeMap<K, V>,
        new: &BTreeMap<K, V>,
        full: bool,
    ) -> Result<(), serde_json::Error> {
        if full {
            return out.push(path, Op::Set, 0, 0, new);
        }
        if old == new {
            return Ok(());
        }
        let removed: Vec<&K> = old.keys().filter(|k| !new.contains_key(k)).collect();
        let upserted: BTreeMap<&K, &V> =
            new.iter().filter(|(k, v)| old.get(k) != Some(v)).collect();
        out.push(path, Op::Map, 0, 0, &(removed, upserted))
    }

    pub fn apply<K: Ord + DeserializeOwned, V: DeserializeOwned>(
        slot: &mut BTreeMap<K, V>,
        head: &EditHead,
        value: &[u8],
    ) -> Result<(), String> {
        match head.op {
            Op::Set => {
                *slot = serde_json::from_slice(value).map_err(|e| e.to_string())?;
                Ok(())
            }
            Op::Map => {
                let (removed, upserted): (Vec<K>, BTreeMap<K, V>) =
                    serde_json::from_slice(value).map_err(|e| e.to_string())?;
                for k in removed {
                    slot.remove(&k);
                }
                slot.extend(upserted);
                Ok(())
            }
            Op::Splice => Err("splice on a map".into()),
        }
    }
}

/// The table: how each field of `DesiredState` is recorded. Generates [`diff`] and
/// [`apply_edit`] from one list, so they cannot disagree on a path.
macro_rules! journaled {
    ($($kind:ident $path:literal => $(.$f:ident)+;)*) => {
        /// The edits that turn `old` into `new` (`full`: every field, whole, whatever changed).
        pub fn diff(old: &DesiredState, new: &DesiredState, full: bool) -> Result<Encoded, serde_json::Error> {
            let mut out = Encoded::default();
            $( $kind::diff(&mut out, $path, &old$(.$f)+, &new$(.$f)+, full)?; )*
            Ok(out)
        }

        /// Every path of the table.
        pub const PATHS: &[&str] = &[$($path),*];

        /// Applies one edit whose value is `value`.
        pub fn apply_edit(state: &mut DesiredState, head: &EditHead, value: &[u8]) -> Result<(), String> {
            match head.path.as_str() {
                $( $path => $kind::apply(&mut state$(.$f)+, head, value), )*
                other => Err(format!("unknown field {other:?} (written by a newer vr-agent?)")),
            }
            .map_err(|e| format!("{}: {e}", head.path))
        }
    };
}

journaled! {
    list "interfaces" => .interfaces;
    list "routes" => .routes;
    list "nat.source_nat" => .nat.source_nat;
    list "nat.static_nat" => .nat.static_nat;
    shared "nat.port_forwards" => .nat.port_forwards;
    list "firewall.ingress" => .firewall.ingress;
    list "firewall.egress" => .firewall.egress;
    list "firewall6.ingress" => .firewall6.ingress;
    list "firewall6.egress" => .firewall6.egress;
    list "acls" => .acls;
    list "vpn.site_to_site" => .vpn.site_to_site;
    whole "vpn.remote_access" => .vpn.remote_access;
    list "vpn.remote_users" => .vpn.remote_users;
    whole "ospf" => .ospf;
    whole "bgp" => .bgp;
    whole "kernel" => .kernel;
    list "dhcp.networks" => .dhcp.networks;
    list "dhcp.hosts" => .dhcp.hosts;
    list "dhcp.upstream_dns" => .dhcp.upstream_dns;
    map "metadata.vms" => .metadata.vms;
    map "passwords.pending" => .passwords.pending;
    whole "passwords.last_serial" => .passwords.last_serial;
    whole "usage" => .usage;
    list "lb.listeners" => .lb.listeners;
    whole "lb.provided" => .lb.provided;
    list "lb.certificates" => .lb.certificates;
    whole "lb.stats" => .lb.stats;
    whole "monitor" => .monitor;
    // Whole: its fields serialise through custom functions (secret boot arguments).
    whole "cloudstack" => .cloudstack;
    whole "ha" => .ha;
    whole "ha_role" => .ha_role;
    whole "policy_index" => .policy_index;
}

/// Names every field of the state and of the sections the table splits, without `..`: a
/// field added to the model stops the build here until the table above records it.
#[allow(dead_code)]
fn every_field_is_journaled(s: DesiredState) {
    let DesiredState {
        interfaces: _,
        routes: _,
        nat:
            vr_nat::NatSection {
                source_nat: _,
                static_nat: _,
                port_forwards: _,
            },
        firewall: vr_nat::FirewallSection {
            ingress: _,
            egress: _,
        },
        firewall6:
            vr_nat::v6::Firewall6Section {
                ingress: _,
                egress: _,
            },
        acls: _,
        vpn:
            vr_vpn::VpnSection {
                site_to_site: _,
                remote_access: _,
                remote_users: _,
            },
        ospf: _,
        bgp: _,
        kernel: _,
        dhcp:
            vr_guest::DhcpSection {
                networks: _,
                hosts: _,
                upstream_dns: _,
            },
        metadata: vr_guest::MetadataSection { vms: _ },
        passwords:
            vr_guest::PasswordSection {
                pending: _,
                last_serial: _,
            },
        usage: _,
        lb:
            vr_lb::LbSection {
                listeners: _,
                provided: _,
                certificates: _,
                stats: _,
            },
        monitor: _,
        cloudstack: _,
        ha: _,
        ha_role: _,
        policy_index: _,
    } = s;
}

/// Reads the edits of a record (header line, then the values) onto `state`.
pub fn apply(state: &mut DesiredState, edits: &[EditHead], values: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    for head in edits {
        let value = at
            .checked_add(head.len)
            .and_then(|end| values.get(at..end))
            .ok_or_else(|| format!("{}: value runs past the record", head.path))?;
        apply_edit(state, head, value)?;
        at += head.len;
    }
    if at != values.len() {
        return Err(format!("{} bytes after the last value", values.len() - at));
    }
    Ok(())
}
