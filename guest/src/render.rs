//! Renders the `dhcp` section as dnsmasq's files (pure).
//!
//! Three files, split by how a change reaches the daemon:
//! - `dnsmasq.conf`: the structure (interfaces, ranges, options, upstreams, which MACs are
//!   non-default NICs). A change restarts
//!   dnsmasq, which keeps its leases (they are in the lease file, read at start).
//! - `dhcphosts` (`dhcp-hostsfile`) and `hosts` (`addn-hosts`): the static leases and the
//!   names. A change is a rewrite plus SIGHUP, which re-reads both without dropping a lease.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::model::{DhcpHost, DhcpSection};

/// The tag of a non-default NIC's host: options that would route or resolve through this
/// network are not sent to it (a VM has one default gateway).
pub const NODEFAULT_TAG: &str = "nodefault";
/// The name guests use to find the router (metadata, user data, password server).
pub const DATA_SERVER: &str = "data-server";

/// Where the files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `<run-dir>/dnsmasq`: config, host files, pid file, log.
    pub dir: PathBuf,
    /// The lease file: under the state directory, so leases outlive a reboot.
    pub leases: PathBuf,
}

impl Paths {
    pub fn new(run_dir: &Path, state_dir: &Path) -> Paths {
        Paths {
            dir: run_dir.join("dnsmasq"),
            leases: state_dir.join("dnsmasq.leases"),
        }
    }
    pub fn conf(&self) -> PathBuf {
        self.dir.join("dnsmasq.conf")
    }
    pub fn dhcphosts(&self) -> PathBuf {
        self.dir.join("dhcphosts")
    }
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn pid(&self) -> PathBuf {
        self.dir.join("dnsmasq.pid")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("dnsmasq.log")
    }
}

/// The three files' contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub conf: String,
    pub dhcphosts: String,
    pub hosts: String,
}

/// Renders everything. `section` must have passed [`crate::model::validate`].
pub fn render(section: &DhcpSection, paths: &Paths) -> Rendered {
    Rendered {
        conf: conf(section, paths),
        dhcphosts: dhcphosts(section),
        hosts: hosts(section),
    }
}

fn mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

fn join(a: &[Ipv4Addr]) -> String {
    a.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `dnsmasq.conf`.
pub fn conf(s: &DhcpSection, p: &Paths) -> String {
    let mut c = String::new();
    let d = p.dir.display();
    // `let _ =`: writing to a String cannot fail.
    let _ = writeln!(
        c,
        "# Rendered by vr-agent: every change is overwritten. Only this file is read\n\
         # (--conf-file): the host's /etc/dnsmasq.conf, /etc/hosts and /etc/resolv.conf are not.\n\
         pid-file={d}/dnsmasq.pid\n\
         dhcp-leasefile={}\n\
         dhcp-hostsfile={d}/dhcphosts\n\
         addn-hosts={d}/hosts\n\
         log-facility={d}/dnsmasq.log\n\
         no-resolv\n\
         no-hosts\n\
         # DNS and DHCP on the guest NICs only (never a public one): bind-dynamic binds each\n\
         # listed NIC's addresses, and lo (which --interface adds) is excluded.\n\
         bind-dynamic\n\
         except-interface=lo\n\
         # A name with several addresses (data-server) answers with the one on the asking network.\n\
         localise-queries\n\
         domain-needed\n\
         bogus-priv\n\
         dhcp-authoritative",
        p.leases.display()
    );
    for n in &s.networks {
        let _ = writeln!(c, "interface={}", n.device);
    }
    for u in &s.upstream_dns {
        let _ = writeln!(c, "server={u}");
    }
    for n in &s.networks {
        let tag = n.tag();
        let router = n.address.addr();
        let _ = writeln!(c, "# guest network {} on {}", n.address.trunc(), n.device);
        if let Some(dom) = &n.domain {
            let _ = writeln!(c, "domain={dom},{}", n.address.trunc());
            let _ = writeln!(c, "local=/{dom}/");
        }
        // `static`: only hosts listed in dhcphosts get an address.
        for r in std::iter::once(n.address.trunc()).chain(n.extra_ranges.iter().map(|r| r.trunc()))
        {
            let _ = writeln!(
                c,
                "dhcp-range=set:{tag},{},static,{},infinite",
                r.network(),
                mask(r.prefix_len())
            );
        }
        let only_default = format!("tag:{tag},tag:!{NODEFAULT_TAG}");
        let gw = n.gateway.unwrap_or(router);
        let _ = writeln!(c, "dhcp-option={only_default},option:router,{gw}");
        let dns = if n.dns.is_empty() {
            router.to_string()
        } else {
            join(&n.dns)
        };
        let _ = writeln!(c, "dhcp-option={only_default},option:dns-server,{dns}");
        if let Some(dom) = &n.domain {
            let _ = writeln!(c, "dhcp-option={only_default},option:domain-name,{dom}");
        }
        if let Some(mtu) = n.mtu {
            let _ = writeln!(c, "dhcp-option=tag:{tag},option:mtu,{mtu}");
        }
    }
    // Non-default NICs are tagged by MAC here, not with `set:` in `dhcphosts`: dnsmasq 2.90
    // (Debian 12) segfaults on SIGHUP while it holds a lease whose host entry carries a tag
    // (seen in the namespace test). Adding or removing a VM's extra NIC is rare: it restarts
    // dnsmasq, which reads its leases back; every other host change stays a SIGHUP.
    for h in sorted_hosts(s).into_iter().filter(|h| !h.default_nic) {
        let _ = writeln!(c, "dhcp-mac=set:{NODEFAULT_TAG},{}", h.mac);
    }
    if !s.networks.is_empty() {
        // An option named without a value is not sent (dnsmasq would otherwise offer itself as
        // router and resolver).
        let _ = writeln!(
            c,
            "# non-default NICs: no router, no DNS server, no domain\n\
             dhcp-option=tag:{NODEFAULT_TAG},option:router\n\
             dhcp-option=tag:{NODEFAULT_TAG},option:dns-server\n\
             dhcp-option=tag:{NODEFAULT_TAG},option:domain-name"
        );
    }
    c
}

fn sorted_hosts(s: &DhcpSection) -> Vec<&DhcpHost> {
    let mut hosts: Vec<&DhcpHost> = s.hosts.iter().collect();
    hosts.sort_by(|a, b| (a.ipv4, &a.mac).cmp(&(b.ipv4, &b.mac)));
    hosts
}

/// One `dhcp-hostsfile` line: `mac,ip[,name],infinite`. A non-default NIC
/// carries no name: the VM's name belongs to its default NIC's lease (two leases with one
/// name would make dnsmasq drop the name from DNS on the second).
pub fn dhcphost_line(h: &DhcpHost) -> String {
    let mut l = h.mac.clone();
    let _ = write!(l, ",{}", h.ipv4);
    if let Some(n) = h.hostname.as_ref().filter(|_| h.default_nic) {
        let _ = write!(l, ",{n}");
    }
    l.push_str(",infinite");
    l
}

/// `dhcphosts`, sorted by address.
pub fn dhcphosts(s: &DhcpSection) -> String {
    let mut out = String::new();
    for h in sorted_hosts(s) {
        out.push_str(&dhcphost_line(h));
        out.push('\n');
    }
    out
}

/// `hosts`: `data-server` on every network, then every default NIC's name (short and in its
/// network's domain). A non-default NIC's address gets no name: the VM's name is its default
/// NIC's.
pub fn hosts(s: &DhcpSection) -> String {
    let mut out = String::new();
    for n in &s.networks {
        let ip = n.address.addr();
        match &n.domain {
            Some(d) => {
                let _ = writeln!(out, "{ip} {DATA_SERVER} {DATA_SERVER}.{d}");
            }
            None => {
                let _ = writeln!(out, "{ip} {DATA_SERVER}");
            }
        }
    }
    for h in sorted_hosts(s) {
        let Some(name) = &h.hostname else { continue };
        if !h.default_nic {
            continue;
        }
        match s.network_of(h.ipv4).and_then(|n| n.domain.as_ref()) {
            Some(d) => {
                let _ = writeln!(out, "{} {name} {name}.{d}", h.ipv4);
            }
            None => {
                let _ = writeln!(out, "{} {name}", h.ipv4);
            }
        }
    }
    out
}
