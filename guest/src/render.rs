//! Renders the `dhcp` section as dnsmasq's files (pure).
//!
//! Split by how a change reaches the daemon:
//! - `dnsmasq.conf`: the structure (interfaces, ranges, options, upstreams, which MACs are
//!   non-default NICs). A change restarts dnsmasq, which keeps its leases (they are in the
//!   lease file, read at start).
//! - `hosts` (`addn-hosts`): the `data-server` name of each network; it changes with the
//!   networks only (a SIGHUP re-reads it).
//! - one file per host in `dhcp-hosts.d/` (`dhcp-hostsdir`: its static lease) and in
//!   `hosts.d/` (`hostsdir`: its names), named by its MAC. dnsmasq watches both directories
//!   with inotify: a new file is read without any signal, so adding a host writes two small
//!   files whatever the number of hosts. A name file removed or changed is re-read the same
//!   way; a lease file removed or changed needs a SIGHUP (dnsmasq 2.90 only adds
//!   `dhcp-hostsdir` records on its own). Files whose name starts with a dot are ignored
//!   by dnsmasq: the executor writes `.tmp-<mac>` and renames it.
//!
//! DHCPv6 (dual-stack guests): a network with an `address6` gets a static DHCPv6 range on its
//! prefix (`dhcp-range=set:net6-<dev>,<prefix>::,static,<len>,infinite`): only hosts with a
//! `dhcp-host=id:<duid>,[<ipv6>]` line get an address, as in IPv4. That line sits in the
//! host's own file in `dhcp-hosts.d`, under its IPv4 line, so a dual-stack host is still one
//! file read by inotify. Its AAAA name is a second line of its `hosts.d` file. dnsmasq sends
//! no router advertisements (no `enable-ra`): radvd does, with the managed flag set on such
//! networks (see [`crate::radvd`]).

use std::collections::BTreeMap;
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
    /// `dhcp-hostsdir`: one static lease per file.
    pub fn dhcp_hosts_dir(&self) -> PathBuf {
        self.dir.join("dhcp-hosts.d")
    }
    /// `hostsdir`: one host's names per file.
    pub fn names_dir(&self) -> PathBuf {
        self.dir.join("hosts.d")
    }
    /// The file of `mac` in `kind`'s directory.
    pub fn host_file(&self, kind: HostDir, mac: &str) -> PathBuf {
        match kind {
            HostDir::Dhcp => self.dhcp_hosts_dir(),
            HostDir::Names => self.names_dir(),
        }
        .join(mac)
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

/// The two per-host directories, in the order a host's files are written: the name first, so
/// that it answers as soon as dnsmasq has read that one file (each file is its own inotify
/// event; a few ms at 5,000 hosts once dnsmasq has finished reading its files at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostDir {
    /// `hosts.d`: the names.
    Names,
    /// `dhcp-hosts.d`: the static lease.
    Dhcp,
}

/// One host's files: its lease line, and its names line when it has a DNS name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFiles {
    pub dhcp: String,
    pub names: Option<String>,
}

impl HostFiles {
    pub fn get(&self, kind: HostDir) -> Option<&str> {
        match kind {
            HostDir::Dhcp => Some(self.dhcp.as_str()),
            HostDir::Names => self.names.as_deref(),
        }
    }
}

/// Everything dnsmasq reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub conf: String,
    pub hosts: String,
    /// By MAC.
    pub host_files: BTreeMap<String, HostFiles>,
}

/// Renders everything. `section` must have passed [`crate::model::validate`].
pub fn render(section: &DhcpSection, paths: &Paths) -> Rendered {
    Rendered {
        conf: conf(section, paths),
        hosts: hosts(section),
        host_files: section
            .hosts
            .iter()
            .map(|h| (h.mac.clone(), host_files(section, h)))
            .collect(),
    }
}

/// The files of one host of `section`.
pub fn host_files(section: &DhcpSection, h: &DhcpHost) -> HostFiles {
    let mut dhcp = format!("{}\n", dhcphost_line(h));
    if let Some(l) = dhcphost6_line(h) {
        dhcp.push_str(&l);
        dhcp.push('\n');
    }
    HostFiles {
        dhcp,
        names: names_line(section, h).map(|l| l + "\n"),
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
         dhcp-hostsdir={d}/dhcp-hosts.d\n\
         hostsdir={d}/hosts.d\n\
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
        let router = n.address.addr();
        let _ = writeln!(c, "# guest network {} on {}", n.address.trunc(), n.device);
        if let Some(dom) = &n.domain {
            let _ = writeln!(c, "domain={dom},{}", n.address.trunc());
            let _ = writeln!(c, "local=/{dom}/");
        }
        // Each subnet has its own tag, as CloudStack's `interface-<dev>-<i>`: its hosts get
        // the router and resolver of their own subnet.
        let main = (
            n.tag(),
            n.address.trunc(),
            n.gateway.unwrap_or(router),
            router,
        );
        let extra = n.extra_ranges.iter().enumerate().map(|(i, r)| {
            let own = r.router().unwrap_or(router);
            (
                format!("{}-{}", n.tag(), i + 1),
                r.address.trunc(),
                r.gateway.unwrap_or(own),
                own,
            )
        });
        for (tag, net, gw, resolver) in std::iter::once(main).chain(extra) {
            if net != n.address.trunc() {
                if let Some(dom) = &n.domain {
                    let _ = writeln!(c, "domain={dom},{net}");
                }
            }
            // `static`: only hosts with a file in dhcp-hosts.d get an address.
            let _ = writeln!(
                c,
                "dhcp-range=set:{tag},{},static,{},infinite",
                net.network(),
                mask(net.prefix_len())
            );
            let only_default = format!("tag:{tag},tag:!{NODEFAULT_TAG}");
            let _ = writeln!(c, "dhcp-option={only_default},option:router,{gw}");
            let dns = if n.dns.is_empty() {
                resolver.to_string()
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
    }
    // Non-default NICs are tagged by MAC here, not with `set:` in a host file: dnsmasq 2.90
    // (Debian 12) segfaults on SIGHUP while it holds a lease whose host entry carries a tag
    // (seen in the namespace test). Adding or removing a VM's extra NIC is rare: it restarts
    // dnsmasq, which reads its leases back; every other host change is a file in a watched
    // directory (and a SIGHUP when a lease file goes or changes).
    // Only the few non-default NICs are sorted: this runs at every plan, over every host.
    let mut extra: Vec<&DhcpHost> = s.hosts.iter().filter(|h| !h.default_nic).collect();
    extra.sort_by(|a, b| (a.ipv4, &a.mac).cmp(&(b.ipv4, &b.mac)));
    for h in extra {
        let _ = writeln!(c, "dhcp-mac=set:{NODEFAULT_TAG},{}", h.mac);
    }
    for n in &s.networks {
        let Some(a6) = n.address6 else { continue };
        let (tag, net) = (n.tag6(), a6.trunc());
        let _ = writeln!(
            c,
            "# DHCPv6 on {net} ({}): hosts with a DUID only",
            n.device
        );
        let _ = writeln!(
            c,
            "dhcp-range=set:{tag},{},static,{},infinite",
            net.network(),
            net.prefix_len()
        );
        let _ = writeln!(
            c,
            "dhcp-option=tag:{tag},option6:dns-server,[{}]",
            a6.addr()
        );
        if let Some(dom) = &n.domain {
            let _ = writeln!(c, "dhcp-option=tag:{tag},option6:domain-search,{dom}");
        }
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

/// One `dhcp-hostsdir` line: `mac,ip[,name],infinite`. A non-default NIC
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

/// The DHCPv6 line of a dual-stack host: `id:<duid>,[<ipv6>],infinite`. No name: the host's
/// names (A and AAAA) are its `hosts.d` file, so its IPv6 lease cannot take over its name.
pub fn dhcphost6_line(h: &DhcpHost) -> Option<String> {
    let (ip, duid) = (h.ipv6?, h.duid.as_ref()?);
    Some(format!("id:{duid},[{ip}],infinite"))
}

/// `hosts`: `data-server` on every network, short and in the network's domain.
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
    out
}

/// A host's names (`ip name name.domain`): a default NIC with a host name only. A non-default
/// NIC's address gets no name: the VM's name is its default NIC's.
pub fn names_line(s: &DhcpSection, h: &DhcpHost) -> Option<String> {
    let name = h.hostname.as_ref().filter(|_| h.default_nic)?;
    let line =
        |ip: &dyn std::fmt::Display| match s.network_of(h.ipv4).and_then(|n| n.domain.as_ref()) {
            Some(d) => format!("{ip} {name} {name}.{d}"),
            None => format!("{ip} {name}"),
        };
    let mut out = line(&h.ipv4);
    if let Some(ip6) = h.ipv6.filter(|_| h.duid.is_some()) {
        out.push('\n');
        out.push_str(&line(&ip6));
    }
    Some(out)
}
