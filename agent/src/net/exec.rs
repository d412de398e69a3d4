//! Sends [`NetOp`]s over rtnetlink, one acknowledged request each, in plan order. Adds are
//! `replace` and deletes of what is already gone succeed, so a plan interrupted half-way can
//! simply be planned and sent again.

use std::net::{IpAddr, Ipv4Addr};

use rtnetlink::packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleHeader, RuleMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{AddressMessageBuilder, Handle, LinkUnspec, RouteMessageBuilder};

use super::observe::NetError;
use super::{NetOp, RuleKey, Snapshot};

/// errno values that mean "already as wanted" for an idempotent add or delete.
const EEXIST: i32 = libc::EEXIST;
const GONE: [i32; 3] = [libc::ENOENT, libc::ESRCH, libc::EADDRNOTAVAIL];

/// Sends `ops` in order, resolving device names through `sys`. Stops at the first refusal.
/// Returns the number of requests that changed something.
pub async fn apply(h: &Handle, sys: &Snapshot, ops: &[NetOp]) -> Result<usize, NetError> {
    let mut sent = 0;
    for op in ops {
        let refused = |reason: String| NetError::Refused {
            op: op.to_string(),
            reason,
        };
        let index = |dev: &str| {
            sys.link(dev)
                .map(|l| l.index)
                .ok_or_else(|| refused(format!("no NIC named {dev}")))
        };
        let result = match op {
            NetOp::LinkUp { device } => {
                let m = LinkUnspec::new_with_index(index(device)?).up().build();
                h.link().set(m).execute().await
            }
            NetOp::LinkDown { device } => {
                let m = LinkUnspec::new_with_index(index(device)?).down().build();
                h.link().set(m).execute().await
            }
            NetOp::LinkMtu { device, mtu } => {
                let m = LinkUnspec::new_with_index(index(device)?).mtu(*mtu).build();
                h.link().set(m).execute().await
            }
            NetOp::AddressAdd { device, address } => {
                h.address()
                    .add(
                        index(device)?,
                        IpAddr::V4(address.addr()),
                        address.prefix_len(),
                    )
                    .replace()
                    .execute()
                    .await
            }
            NetOp::AddressDel { device, address } => {
                // Without promotion the kernel deletes every secondary address of the subnet
                // with its primary: one added by hand would go with the agent's.
                promote_secondaries(device)
                    .map_err(|e| refused(format!("promote_secondaries: {e}")))?;
                let m = AddressMessageBuilder::<Ipv4Addr>::new()
                    .index(index(device)?)
                    .address(address.addr(), address.prefix_len())
                    .build();
                h.address().del(m).execute().await
            }
            NetOp::Announce { device, ip } => {
                let l = sys
                    .link(device)
                    .ok_or_else(|| refused(format!("no NIC named {device}")))?;
                let mac = l.mac.map(|m| m.0).unwrap_or_default();
                // The address is in place either way; a lost announcement only delays
                // upstream caches until their next ARP, so it must not fail the push.
                match super::garp::announce(l.index, mac, *ip) {
                    Ok(()) => sent += 1,
                    Err(e) => tracing::warn!("{op}: gratuitous ARP not sent: {e}"),
                }
                continue;
            }
            NetOp::RouteReplace {
                table,
                destination,
                route,
            } => {
                let scope = if route.gateway.is_some() {
                    RouteScope::Universe
                } else {
                    RouteScope::Link
                };
                // An add must name a device that exists (a delete may find it gone).
                if let Some(d) = &route.device {
                    index(d)?;
                }
                let m = route_message(*table, *destination, route, sys, scope);
                h.route().add(m).replace().execute().await
            }
            // Any scope (as `ip route del`), but only a static route with this next hop: a
            // same-destination route someone else added is not the agent's.
            NetOp::RouteDel {
                table,
                destination,
                route,
            } => {
                let m = route_message(*table, *destination, route, sys, RouteScope::NoWhere);
                h.route().del(m).execute().await
            }
            NetOp::RuleAdd(k) => {
                h.rule()
                    .add()
                    .v4()
                    .priority(k.priority)
                    .fw_mark(k.fwmark)
                    .table_id(k.table)
                    .action(RuleAction::ToTable)
                    .execute()
                    .await
            }
            NetOp::RuleDel(k) => h.rule().del(rule_message(k)).execute().await,
        };
        match result {
            Ok(()) => sent += 1,
            Err(rtnetlink::Error::NetlinkError(e)) => {
                let errno = -e.raw_code();
                let adding = matches!(op, NetOp::RuleAdd(_));
                let deleting = matches!(
                    op,
                    NetOp::AddressDel { .. } | NetOp::RouteDel { .. } | NetOp::RuleDel(_)
                );
                if !(adding && errno == EEXIST || deleting && GONE.contains(&errno)) {
                    return Err(refused(
                        std::io::Error::from_raw_os_error(errno).to_string(),
                    ));
                }
            }
            Err(e) => return Err(refused(e.to_string())),
        }
    }
    Ok(sent)
}

/// `sysctl -w net.ipv4.conf.DEV.promote_secondaries=1` (in the caller's network namespace).
fn promote_secondaries(device: &str) -> std::io::Result<()> {
    let path = format!("/proc/sys/net/ipv4/conf/{device}/promote_secondaries");
    if std::fs::read_to_string(&path)?.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, "1")
}

/// `ip route ... DST [via GW] [dev DEV] proto static table T` as a message.
fn route_message(
    table: u32,
    dst: ipnet::Ipv4Net,
    route: &super::WantRoute,
    sys: &Snapshot,
    scope: RouteScope,
) -> rtnetlink::packet_route::route::RouteMessage {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst.addr(), dst.prefix_len())
        .table_id(table)
        .scope(scope)
        .protocol(RouteProtocol::Static);
    if let Some(gw) = route.gateway {
        b = b.gateway(gw);
    }
    if let Some(l) = route.device.as_deref().and_then(|d| sys.link(d)) {
        b = b.output_interface(l.index);
    }
    b.build()
}

/// `ip rule del priority P fwmark M lookup T` as a message.
fn rule_message(k: &RuleKey) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header = RuleHeader {
        family: AddressFamily::Inet,
        action: RuleAction::ToTable,
        table: u8::try_from(k.table).unwrap_or(0),
        ..Default::default()
    };
    m.attributes = vec![
        RuleAttribute::Priority(k.priority),
        RuleAttribute::FwMark(k.fwmark),
        RuleAttribute::Table(k.table),
    ];
    m
}

/// Reads the system, for callers that hold no handle.
pub async fn snapshot_now() -> Result<Snapshot, NetError> {
    let h = super::observe::connect()?;
    let s = super::observe::snapshot(&h).await;
    drop(h);
    s
}
