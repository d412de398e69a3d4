//! Concern `usage`: byte counters per public NIC (table `inet vr_stats`, planned in
//! [`vr_nat::usage`]), so counting starts with the push that brings a public NIC rather than
//! with the first read. Plans from the table as read back just before planning; sends the
//! plan as one `nft -f` transaction with a deadline; verifies by reading back that nothing is
//! left to do. A plan never creates a counter that exists, so applies keep the counts.
//!
//! Self-heal: the kernel's ruleset generation says whether anyone touched nftables; then the
//! table is read again, and a deleted or altered table is put back. Counters of a deleted
//! table restart from 0: the management server takes a lower reading as a reset and adds from
//! there, so only what was counted since its last read is lost; the engine records the repair
//! in the alerts log ([`crate::alerts::healed`]) so an operator hears about it.

use std::fmt;

use vr_nat::usage::{self, Current, Nic, Spec, TABLE};

use super::nft_script::{self, blocking, generation, nft};
use super::{Concern, ConcernError, PlanSummary};
use crate::state::{DesiredState, Interface, InterfaceRole};

#[derive(Debug, Default)]
pub struct UsageConcern {
    /// The table as last read (inner `None`: absent); `None` until read.
    current: Option<Option<Current>>,
    /// The kernel's ruleset generation when the table was last read or written.
    generation: Option<u32>,
}

/// The `nft -f` transaction of one transition.
#[derive(Debug)]
pub struct UsagePlan(pub usage::Plan);

impl fmt::Display for UsagePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for UsagePlan {
    fn changes(&self) -> usize {
        self.0.changes()
    }
}

/// The counting wanted for `s`: its public NICs, with guest traffic told apart by its guest
/// NICs, or by the `usage` section's guest CIDR when it has one (a VPC's).
pub fn spec_of(s: &DesiredState) -> Spec {
    spec(&s.interfaces, s.usage.guest_cidr)
}

/// [`spec_of`] from its parts (the CLI reads them from the committed state's JSON).
pub fn spec(interfaces: &[Interface], guest_cidr: Option<ipnet::Ipv4Net>) -> Spec {
    // Validated on push; checked again as these names are pasted into nft text.
    let named = |i: &&Interface| crate::validate::is_valid_ifname(&i.device);
    let public = interfaces
        .iter()
        .filter(named)
        .filter(|i| i.role == InterfaceRole::Public)
        .map(|i| Nic {
            device: i.device.clone(),
            addresses: i.addresses.iter().map(|a| a.addr().to_string()).collect(),
        })
        .collect();
    let guests: Vec<String> = interfaces
        .iter()
        .filter(named)
        .filter(|i| i.role == InterfaceRole::Guest)
        .map(|i| i.device.clone())
        .collect();
    // A typed CIDR: its text is safe to paste into nft.
    let cidr = guest_cidr.map(|c| c.trunc().to_string());
    Spec::new(public, &guests, cidr.as_deref())
}

/// What the kernel holds (`None`: no table).
pub fn read() -> Result<Option<Current>, ConcernError> {
    let table = nft(&["-j", "list", "table", "inet", TABLE])?;
    if !table.status.success() {
        let err = String::from_utf8_lossy(&table.stderr);
        if err.contains("No such file") {
            return Ok(None);
        }
        return Err(ConcernError::Failed(format!(
            "nft list table inet {TABLE}: {}",
            err.trim()
        )));
    }
    let chain = nft(&["list", "chain", "inet", TABLE, usage::CHAIN])?;
    // A missing chain reads as no rules: the plan puts it back.
    let chain_text = if chain.status.success() {
        String::from_utf8_lossy(&chain.stdout).into_owned()
    } else {
        String::new()
    };
    usage::parse_current(&String::from_utf8_lossy(&table.stdout), &chain_text)
        .map(Some)
        .map_err(ConcernError::Failed)
}

impl Concern for UsageConcern {
    const NAME: &'static str = "usage";
    type Plan = UsagePlan;

    fn plan(
        &self,
        _applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<UsagePlan, ConcernError> {
        // Planned from the kernel, never from `applied`: the counters are the kernel's.
        let Some(current) = &self.current else {
            return Err(ConcernError::Unavailable(format!(
                "table inet {TABLE} not read yet"
            )));
        };
        Ok(UsagePlan(usage::plan(current.as_ref(), &spec_of(desired))))
    }

    async fn execute(
        &mut self,
        plan: &UsagePlan,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        self.current = None;
        let p = plan.0.clone();
        let before = generation();
        blocking(move || nft_script::send(TABLE, &p.to_string())).await?;
        self.generation = generation();
        nft_script::record_own_writes(before, self.generation, 1);
        let after = blocking(read).await?;
        let left = usage::plan(after.as_ref(), &spec_of(desired));
        self.current = Some(after);
        if left.changes() != 0 {
            return Err(ConcernError::Failed(format!(
                "table inet {TABLE} read back differs; still to do:\n{left}"
            )));
        }
        Ok(())
    }

    async fn refresh(
        &mut self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        // Nobody touched nftables since the last read or write: what was read still holds
        // (counts aside, which plans never use). Nor is there anything to read for a push that
        // leaves the counted NICs as they were (a port forward added bumps the generation):
        // a table changed by hand is the self-heal loop's to find.
        if self.current.is_some()
            && (spec_of(applied) == spec_of(desired) || !self.may_have_drifted().await)
        {
            return Ok(());
        }
        self.observe().await
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        // Read before listing: a change made while we list is seen by the next probe.
        let g = generation();
        self.current = Some(blocking(read).await?);
        self.generation = g;
        Ok(())
    }

    async fn may_have_drifted(&mut self) -> bool {
        // Unknown (never read, or unreadable) counts as changed: reading is always safe. The
        // agent's own writes to other tables are not drift.
        nft_script::changed_by_others(self.generation, generation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(guest_cidr: Option<&str>) -> DesiredState {
        let mut s: DesiredState = serde_json::from_value(serde_json::json!({
        "interfaces": [
            {"device": "eth0", "role": "guest", "addresses": ["10.1.1.1/24"]},
            {"device": "eth1", "role": "control", "addresses": ["169.254.0.5/16"]},
            {"device": "eth2", "role": "public", "addresses": ["192.0.2.10/24", "192.0.2.11/24"]},
            {"device": "eth3", "role": "guest", "addresses": ["10.1.2.1/24"]}
        ]}))
        .unwrap();
        s.usage.guest_cidr = guest_cidr.map(|c| c.parse().unwrap());
        s
    }

    #[test]
    fn the_spec_comes_from_the_nics_and_a_vpc_counts_by_its_cidr() {
        let spec = spec_of(&state(None));
        assert_eq!(spec.public.len(), 1);
        assert_eq!(spec.public[0].addresses, ["192.0.2.10", "192.0.2.11"]);
        assert_eq!(
            spec.guests,
            usage::Guests::Nics(vec!["eth0".into(), "eth3".into()])
        );
        // A VPC counts by its CIDR, as a network (host bits dropped).
        let vpc = state(Some("10.0.0.1/16"));
        assert_eq!(
            spec_of(&vpc).guests,
            usage::Guests::Cidr("10.0.0.0/16".into())
        );
    }

    #[test]
    fn nothing_is_planned_before_the_table_is_read() {
        let c = UsageConcern::default();
        let s = state(None);
        assert!(matches!(c.plan(&s, &s), Err(ConcernError::Unavailable(_))));
        let read = UsageConcern {
            current: Some(None),
            generation: None,
        };
        let p = read.plan(&DesiredState::default(), &s).unwrap();
        assert!(p.to_string().starts_with("add table inet vr_stats\n"));
    }
}
