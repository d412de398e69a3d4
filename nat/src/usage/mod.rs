//! Byte counters per public NIC, in a small table of their own, `inet vr_stats`, that no rule
//! push touches (the agent replaces only its `vr` table): named counter objects, referenced
//! by the rules of one regular chain `count` that the forward, input and output hooks jump to
//! (just before the filter hook). Four counters per public NIC: forwarded guest traffic sent
//! and received, and TCP to or from the router itself (and other non-guest traffic) sent and
//! received. Packet cost grows with public NICs, never with rules or VMs.
//!
//! Counts live in the named counters, not in the rules: rewriting chain `count` (a NIC came
//! or went, in one transaction) keeps every count, so counting goes on across pushes and agent
//! restarts. Only deleting the table (or a counter) loses counts.
//!
//! Pure: [`plan`] goes from what the kernel holds ([`Current`], read back with
//! [`parse_current`]) to the [`Spec`], and its `Display` is the `nft -f` transaction.

mod current;

use std::collections::BTreeSet;
use std::fmt;

pub use current::{parse_current, Current};

pub const TABLE: &str = "vr_stats";
/// The regular chain holding the counting rules.
pub const CHAIN: &str = "count";
/// The hooks that jump to [`CHAIN`].
pub const HOOKS: [&str; 3] = ["forward", "input", "output"];

/// A NIC as the counters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub device: String,
    /// Addresses without prefix length (to find the NIC holding one).
    pub addresses: Vec<String>,
}

/// Which traffic of a public NIC is guest traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guests {
    /// What comes from or goes to these NICs (sorted, as `nft` prints a set back).
    Nics(Vec<String>),
    /// What comes from or goes to this CIDR (a VPC).
    Cidr(String),
}

/// The counters wanted: four per public NIC, in NIC order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub public: Vec<Nic>,
    pub guests: Guests,
}

impl Spec {
    /// Counting for these public NICs; guest traffic is that of `guest_nics`, or of
    /// `guest_cidr` when given.
    pub fn new(public: Vec<Nic>, guest_nics: &[String], guest_cidr: Option<&str>) -> Spec {
        let guests = match guest_cidr {
            Some(c) => Guests::Cidr(c.to_string()),
            None => {
                let set: BTreeSet<String> = guest_nics.iter().cloned().collect();
                Guests::Nics(set.into_iter().collect())
            }
        };
        Spec { public, guests }
    }

    /// Counter names in answer order (sent, recv, sent, recv) of every public NIC, or of the
    /// one holding `address`. An address no public NIC holds gives none.
    pub fn counters_for(&self, address: Option<&str>) -> Vec<String> {
        self.public
            .iter()
            .filter(|n| address.is_none_or(|ip| n.addresses.iter().any(|a| a == ip)))
            .flat_map(|n| counter_names(&n.device))
            .collect()
    }

    fn all_counters(&self) -> BTreeSet<String> {
        self.public
            .iter()
            .flat_map(|n| counter_names(&n.device))
            .collect()
    }
}

/// The four counters of one public NIC: forwarded sent/received, then TCP to/from the router
/// itself (and other non-guest traffic) sent/received.
pub fn counter_names(device: &str) -> [String; 4] {
    let d: String = device
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    [
        format!("{d}_sent_fwd"),
        format!("{d}_recv_fwd"),
        format!("{d}_sent_tcp"),
        format!("{d}_recv_tcp"),
    ]
}

fn quoted_set(devs: &[String]) -> String {
    // As `nft` prints it back: a one-element set is the element itself.
    let q: Vec<String> = devs.iter().map(|d| format!("\"{d}\"")).collect();
    if q.len() == 1 {
        return q[0].clone();
    }
    format!("{{ {} }}", q.join(", "))
}

/// The rules of chain `count`, in order, as `nft list chain` prints them.
pub fn rules(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    for nic in &spec.public {
        let p = format!("\"{}\"", nic.device);
        let [sf, rf, st, rt] = counter_names(&nic.device);
        match &spec.guests {
            Guests::Nics(g) if g.is_empty() => {
                out.push(format!(
                    "oifname {p} meta l4proto tcp counter name \"{st}\""
                ));
                out.push(format!(
                    "iifname {p} meta l4proto tcp counter name \"{rt}\""
                ));
            }
            Guests::Nics(g) => {
                let g = quoted_set(g);
                out.push(format!("iifname {g} oifname {p} counter name \"{sf}\""));
                out.push(format!("iifname {p} oifname {g} counter name \"{rf}\""));
                out.push(format!(
                    "oifname {p} iifname != {g} meta l4proto tcp counter name \"{st}\""
                ));
                out.push(format!(
                    "iifname {p} oifname != {g} meta l4proto tcp counter name \"{rt}\""
                ));
            }
            Guests::Cidr(c) => {
                out.push(format!("ip saddr {c} oifname {p} counter name \"{sf}\""));
                out.push(format!("ip daddr {c} iifname {p} counter name \"{rf}\""));
                out.push(format!(
                    "ip saddr != {c} oifname {p} meta l4proto tcp counter name \"{st}\""
                ));
                out.push(format!(
                    "ip daddr != {c} iifname {p} meta l4proto tcp counter name \"{rt}\""
                ));
            }
        }
    }
    out
}

/// What to do to the kernel: one `nft -f` transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// No public NIC is left: the table goes, with its counters.
    pub remove: bool,
    /// Counters to create (the table is created with them when missing).
    pub create: Vec<String>,
    /// Counters of public NICs that are gone.
    pub delete: Vec<String>,
    /// The new rules of chain `count`, when they differ from the kernel's (flushed and
    /// re-added in the same transaction: the named counters keep their counts).
    pub rules: Option<Vec<String>>,
    /// Whether the hook chains are (re)created, jumping to `count`.
    pub hook: bool,
}

/// Plans from what the kernel holds (`None`: no table) to `spec`.
pub fn plan(current: Option<&Current>, spec: &Spec) -> Plan {
    if spec.public.is_empty() {
        return Plan {
            remove: current.is_some(),
            ..Plan::default()
        };
    }
    let want = spec.all_counters();
    let have: BTreeSet<String> = current
        .map(|c| c.counters.keys().cloned().collect())
        .unwrap_or_default();
    let rules = rules(spec);
    Plan {
        remove: false,
        create: want.difference(&have).cloned().collect(),
        delete: have.difference(&want).cloned().collect(),
        hook: current.is_none_or(|c| !c.hooked),
        rules: current.is_none_or(|c| c.rules != rules).then_some(rules),
    }
}

impl Plan {
    pub fn changes(&self) -> usize {
        usize::from(self.remove)
            + self.create.len()
            + self.delete.len()
            + usize::from(self.rules.is_some())
            + usize::from(self.hook)
    }
}

/// The `nft -f` script of a plan (empty when nothing changes).
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.remove {
            return writeln!(f, "delete table inet {TABLE}");
        }
        if self.changes() == 0 {
            return Ok(());
        }
        writeln!(f, "add table inet {TABLE}")?;
        for c in &self.create {
            writeln!(f, "add counter inet {TABLE} {c}")?;
        }
        if let Some(rules) = &self.rules {
            writeln!(f, "add chain inet {TABLE} {CHAIN}")?;
            writeln!(f, "flush chain inet {TABLE} {CHAIN}")?;
            for r in rules {
                writeln!(f, "add rule inet {TABLE} {CHAIN} {r}")?;
            }
        }
        if self.hook {
            for hook in HOOKS {
                writeln!(
                    f,
                    "add chain inet {TABLE} {hook} {{ type filter hook {hook} priority filter - 10; policy accept; }}"
                )?;
                writeln!(f, "flush chain inet {TABLE} {hook}")?;
                writeln!(f, "add rule inet {TABLE} {hook} jump {CHAIN}")?;
            }
        }
        // Last: a counter can go only once no rule names it.
        for c in &self.delete {
            writeln!(f, "delete counter inet {TABLE} {c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
