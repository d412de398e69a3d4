//! Kernel tunables the router needs, owned by the agent like any other concern: forwarding,
//! reverse-path filtering as the policy routing needs it, conntrack sized from the VM's memory
//! and its timeouts, router advertisements ignored on public NICs.
//!
//! Pure: [`wanted`] turns the desired state, the operator's sizing and a few facts about the
//! machine into settings; [`plan`] compares them with a [`Snapshot`] of `/proc/sys` and
//! returns the writes, printed as the `sysctl -w` commands an operator would type. The
//! executor (`concern::tunables`) writes exactly those and reads them back.
//!
//! Why each value:
//! - `ip_forward = 1`: a router that does not forward is no router. Nothing else in the image
//!   turns it on.
//! - `rp_filter`: the kernel uses the larger of `conf.all` and `conf.DEV`, so `all` is 0 and
//!   each NIC gets its own value. Public NICs and private gateways are loose (2): with one
//!   routing table per public NIC (policy routing), a reply-path check against the main table
//!   would drop traffic that legitimately enters a second public NIC. Guest NICs are strict
//!   (1): a guest cannot send with an address that does not route back to its own network
//!   (anti-spoofing). `default` is loose, so NICs created later by daemons (charon's
//!   kernel-libipsec TUN device, whose decrypted packets come from remote networks) pass.
//! - conntrack: the kernel sizes the table from RAM for a host, not a NAT router; a 256 MB VM
//!   gets a few thousand entries and drops new flows when it is full (the classic VR outage).
//!   The agent sizes it at one entry per 4 KiB of RAM (at most ~8% of RAM when full, about 320
//!   bytes an entry), at least 65,536, and the hash at half of that (two entries a bucket).
//!   Both are global to the kernel: they are owned only from the initial network namespace.
//! - timeouts: the kernel keeps an idle established TCP entry for 5 days; routers keep one
//!   day (long enough for an idle SSH session, short enough not to fill the table with
//!   half-dead flows); UDP streams 180 s as OpenWrt does; the rest stay at kernel defaults.
//! - `accept_ra = 0` on public NICs: the router's routes come from the management server,
//!   never from whoever sends router advertisements on a public segment.
//! - `net.ipv6.conf.all.forwarding = 1` once the state holds IPv6 (an IPv6 address on a NIC
//!   or IPv6 firewall rules): the routed guest prefixes are forwarded, and the guest NICs
//!   answer neighbour discovery as a router. Without IPv6 in the state it is left alone, so
//!   an IPv4-only router does not start forwarding IPv6 that its `ip6` table was never asked
//!   to filter.

use std::collections::BTreeMap;
use std::fmt;

use crate::state::{DesiredState, InterfaceRole, KernelSection};

mod render;

pub use render::sysctl_name;

/// Idle established TCP flows are kept this long (seconds) unless the operator says otherwise.
pub const TCP_ESTABLISHED_TIMEOUT: u64 = 86_400;
/// UDP flows seen in one direction only (seconds).
pub const UDP_TIMEOUT: u64 = 30;
/// UDP flows seen in both directions (seconds).
pub const UDP_STREAM_TIMEOUT: u64 = 180;
/// Bounds of the memory-based conntrack size.
pub const CONNTRACK_MIN: u64 = 65_536;
pub const CONNTRACK_MAX: u64 = 4_194_304;

/// What the machine is, as the executor read it (pure input of the planner).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `MemTotal` of `/proc/meminfo`, in bytes.
    pub mem_total_bytes: u64,
    /// The agent runs in the kernel's initial network namespace (a real router), not in a
    /// test's namespace: only then are the kernel-global conntrack sizes its to own.
    pub init_netns: bool,
    /// `nf_conntrack` is loaded (its sysctls exist). It loads with the first ruleset that
    /// uses conntrack, which the nftables concern applies before this one.
    pub conntrack_loaded: bool,
}

/// `/proc/sys` as read just before planning: path (relative to `/proc/sys`) -> value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub facts: Facts,
    pub values: BTreeMap<String, String>,
}

/// One write of a plan; `from` is what the kernel held (`None`: the file does not exist yet,
/// e.g. a NIC that is about to appear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: String,
    pub from: Option<String>,
    pub to: String,
}

/// The writes of one transition, and the settings deliberately left alone (printed as
/// comments so an operator sees why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunablesPlan {
    pub writes: Vec<Write>,
    pub notes: Vec<String>,
}

impl fmt::Display for TunablesPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.writes {
            let name = sysctl_name(&w.path);
            match &w.from {
                Some(old) => writeln!(f, "sysctl -w {name}={}  # was {old}", w.to)?,
                None => writeln!(f, "sysctl -w {name}={}", w.to)?,
            }
        }
        for n in &self.notes {
            writeln!(f, "# {n}")?;
        }
        Ok(())
    }
}

/// The conntrack sizes and timeouts in force: the push's `kernel` section, else the config
/// file's, else the defaults above.
pub fn sizing(push: &KernelSection, config: &KernelSection) -> KernelSection {
    KernelSection {
        conntrack_max: push.conntrack_max.or(config.conntrack_max),
        conntrack_buckets: push.conntrack_buckets.or(config.conntrack_buckets),
        tcp_established_timeout: push
            .tcp_established_timeout
            .or(config.tcp_established_timeout),
        udp_timeout: push.udp_timeout.or(config.udp_timeout),
        udp_stream_timeout: push.udp_stream_timeout.or(config.udp_stream_timeout),
    }
}

/// Conntrack entries for a VM with `mem` bytes of RAM (see the module comment).
pub fn conntrack_max_for(mem: u64) -> u64 {
    (mem / 4096).clamp(CONNTRACK_MIN, CONNTRACK_MAX)
}

/// The hash size the kernel really sets for `n`: it allocates whole pages of bucket pointers
/// (512 on a 64-bit kernel with 4 KiB pages) and rounds up. Planning the rounded value keeps
/// the read-back verification exact (122,935 asked is 123,392 held).
pub fn kernel_buckets(n: u64) -> u64 {
    const PER_PAGE: u64 = 4096 / 8;
    n.div_ceil(PER_PAGE) * PER_PAGE
}

/// Whether the state makes this machine route anything. An empty state (an agent that has
/// not been told anything yet) owns no tunables: installing the package does not turn a host
/// into a router behind its owner's back.
pub fn routes_traffic(s: &DesiredState) -> bool {
    !s.interfaces.is_empty()
        || !s.routes.is_empty()
        || s.nat != Default::default()
        || s.firewall != Default::default()
        || !s.acls.is_empty()
        || !s.vpn.site_to_site.is_empty()
        || s.vpn.remote_access.is_some()
        || s.ospf.is_some()
}

/// The settings `s` implies, and notes on those not owned here.
pub fn wanted(s: &DesiredState, config: &KernelSection, facts: &Facts) -> TunablesPlan {
    let mut out = TunablesPlan::default();
    if !routes_traffic(s) {
        return out;
    }
    let mut set = |path: String, value: u64| {
        out.writes.push(Write {
            path,
            from: None,
            to: value.to_string(),
        })
    };
    set("net/ipv4/ip_forward".into(), 1);
    if crate::net::v6::has_ipv6(s) {
        set("net/ipv6/conf/all/forwarding".into(), 1);
    }
    // The router is the one owner of its guest gateway addresses: no duplicate address
    // detection on guest NICs with IPv6 (as CloudStack's router), so its link-local address,
    // which radvd sends from, is usable the moment the link has carrier and a guest's first
    // router solicitation is answered instead of the one four seconds later.
    for i in s
        .interfaces
        .iter()
        .filter(|i| i.role == InterfaceRole::Guest && !i.addresses6.is_empty())
    {
        set(format!("net/ipv6/conf/{}/accept_dad", i.device), 0);
    }
    set("net/ipv4/conf/all/rp_filter".into(), 0);
    set("net/ipv4/conf/default/rp_filter".into(), 2);
    for i in &s.interfaces {
        let rp = match i.role {
            InterfaceRole::Guest | InterfaceRole::Control => 1,
            InterfaceRole::Public | InterfaceRole::PrivateGateway => 2,
        };
        set(format!("net/ipv4/conf/{}/rp_filter", i.device), rp);
        if i.role == InterfaceRole::Public {
            set(format!("net/ipv6/conf/{}/accept_ra", i.device), 0);
        }
    }
    let k = sizing(&s.kernel, config);
    if facts.conntrack_loaded {
        let nf = "net/netfilter";
        set(
            format!("{nf}/nf_conntrack_tcp_timeout_established"),
            k.tcp_established_timeout.unwrap_or(TCP_ESTABLISHED_TIMEOUT),
        );
        set(
            format!("{nf}/nf_conntrack_udp_timeout"),
            k.udp_timeout.unwrap_or(UDP_TIMEOUT),
        );
        set(
            format!("{nf}/nf_conntrack_udp_timeout_stream"),
            k.udp_stream_timeout.unwrap_or(UDP_STREAM_TIMEOUT),
        );
        let max = k
            .conntrack_max
            .unwrap_or_else(|| conntrack_max_for(facts.mem_total_bytes));
        let buckets = kernel_buckets(k.conntrack_buckets.unwrap_or(max / 2));
        if facts.init_netns {
            set(format!("{nf}/nf_conntrack_max"), max);
            set(format!("{nf}/nf_conntrack_buckets"), buckets);
        } else {
            out.notes.push(format!(
                "nf_conntrack_max={max} nf_conntrack_buckets={buckets}: kernel-global, \
                 owned only from the initial network namespace"
            ));
        }
    } else {
        out.notes.push(
            "conntrack sizes and timeouts: nf_conntrack is not loaded yet (it loads with the \
             first ruleset that tracks connections)"
                .into(),
        );
    }
    out
}

/// Pure: the writes that bring `now` to what `desired` implies. A setting whose file does not
/// exist (a NIC not there yet, IPv6 disabled in the kernel) is noted, not written: the next
/// plan after the NIC appears writes it.
pub fn plan(desired: &DesiredState, config: &KernelSection, now: &Snapshot) -> TunablesPlan {
    let want = wanted(desired, config, &now.facts);
    let mut out = TunablesPlan {
        writes: Vec::new(),
        notes: want.notes,
    };
    for w in want.writes {
        match now.values.get(&w.path) {
            Some(v) if v.trim() == w.to => {}
            Some(v) => out.writes.push(Write {
                from: Some(v.trim().to_string()),
                ..w
            }),
            None => out.notes.push(format!(
                "{}: not present on this system",
                sysctl_name(&w.path)
            )),
        }
    }
    out
}

/// The paths a snapshot must hold for [`plan`] (the executor reads exactly these).
pub fn paths(desired: &DesiredState, config: &KernelSection, facts: &Facts) -> Vec<String> {
    wanted(desired, config, facts)
        .writes
        .into_iter()
        .map(|w| w.path)
        .collect()
}

#[cfg(test)]
mod tests;
