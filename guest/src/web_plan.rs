//! What must change for the metadata service and the password server to serve the desired
//! sections (pure): which listeners run on which guest gateway addresses, and which VMs'
//! data and passwords the tables hold. The executor (`agent/src/concern/web.rs`) starts and
//! stops the listeners and swaps the tables; the answers come from [`crate::web`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use crate::metadata::{MetadataSection, VmMetadata};
use crate::passwords::{Acked, PasswordSection};
use crate::web::{METADATA_PORT, PASSWORD_PORT};

/// Which of the two services a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Metadata,
    Password,
}

impl Service {
    pub fn port(self) -> u16 {
        match self {
            Service::Metadata => METADATA_PORT,
            Service::Password => PASSWORD_PORT,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Service::Metadata => "metadata",
            Service::Password => "passwords",
        }
    }
}

/// One listening socket: a guest gateway address and a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listener {
    pub address: Ipv4Addr,
    pub service: Service,
    /// The guest NIC holding the address (for the operator).
    pub device: String,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} ({}) {}",
            self.address,
            self.service.port(),
            self.device,
            self.service.name()
        )
    }
}

/// What the executor holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// Listeners whose task is alive.
    pub listeners: BTreeSet<Listener>,
    /// The metadata the table was built from.
    pub metadata: MetadataSection,
    /// The passwords the table serves: serial by address.
    pub passwords: BTreeMap<Ipv4Addr, u64>,
}

/// A change of one VM's metadata, for the operator (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmChange {
    Set { ip: Ipv4Addr, summary: String },
    Removed { ip: Ipv4Addr },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebPlan {
    pub start: Vec<Listener>,
    pub stop: Vec<Listener>,
    pub metadata: Vec<VmChange>,
    /// Passwords to serve (address, serial).
    pub serve: Vec<(Ipv4Addr, u64)>,
    /// Passwords to stop serving (acknowledged or withdrawn).
    pub forget: Vec<Ipv4Addr>,
}

impl WebPlan {
    pub fn changes(&self) -> usize {
        self.start.len()
            + self.stop.len()
            + self.metadata.len()
            + self.serve.len()
            + self.forget.len()
    }
    /// The tables change (the executor rebuilds and swaps them).
    pub fn tables_change(&self) -> bool {
        !self.metadata.is_empty() || !self.serve.is_empty() || !self.forget.is_empty()
    }
}

/// The listeners of the guest gateway addresses `(device, address)`: both services on each.
pub fn listeners(guest: &[(String, Ipv4Addr)]) -> BTreeSet<Listener> {
    guest
        .iter()
        .flat_map(|(device, address)| {
            [Service::Metadata, Service::Password].map(|service| Listener {
                address: *address,
                service,
                device: device.clone(),
            })
        })
        .collect()
}

fn summary(vm: &VmMetadata) -> String {
    let mut parts = Vec::new();
    if let Some(u) = &vm.user_data {
        parts.push(if u.expose().is_empty() {
            "user-data (empty)".to_string()
        } else {
            "user-data".to_string()
        });
    }
    if !vm.keys.is_empty() {
        let names: Vec<&str> = vm.keys.iter().map(|k| k.name.as_str()).collect();
        parts.push(format!("{} key(s): {}", names.len(), names.join(" ")));
    }
    parts.join(", ")
}

/// Pure: from `current` to serving `metadata` and the unacknowledged `passwords` on the
/// addresses of `guest`.
pub fn plan(
    guest: &[(String, Ipv4Addr)],
    metadata: &MetadataSection,
    passwords: &PasswordSection,
    acked: &Acked,
    current: &Current,
) -> WebPlan {
    let want = listeners(guest);
    let mut p = WebPlan {
        start: want.difference(&current.listeners).cloned().collect(),
        stop: current.listeners.difference(&want).cloned().collect(),
        ..Default::default()
    };
    for (ip, vm) in &metadata.vms {
        if current.metadata.vms.get(ip) != Some(vm) {
            p.metadata.push(VmChange::Set {
                ip: *ip,
                summary: summary(vm),
            });
        }
    }
    for ip in current.metadata.vms.keys() {
        if !metadata.vms.contains_key(ip) {
            p.metadata.push(VmChange::Removed { ip: *ip });
        }
    }
    let serve: BTreeMap<Ipv4Addr, u64> = passwords
        .to_serve(acked)
        .map(|(ip, pw)| (ip, pw.serial))
        .collect();
    for (ip, serial) in &serve {
        if current.passwords.get(ip) != Some(serial) {
            p.serve.push((*ip, *serial));
        }
    }
    for ip in current.passwords.keys() {
        if !serve.contains_key(ip) {
            p.forget.push(*ip);
        }
    }
    p
}

impl fmt::Display for WebPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.stop {
            writeln!(f, "stop listening {l}")?;
        }
        for l in &self.start {
            writeln!(f, "listen {l}")?;
        }
        for c in &self.metadata {
            match c {
                VmChange::Set { ip, summary } => writeln!(f, "metadata {ip}: {summary}")?,
                VmChange::Removed { ip } => writeln!(f, "metadata {ip}: removed")?,
            }
        }
        for (ip, serial) in &self.serve {
            writeln!(f, "password {ip}: serve (serial {serial})")?;
        }
        for ip in &self.forget {
            writeln!(f, "password {ip}: forget")?;
        }
        Ok(())
    }
}
