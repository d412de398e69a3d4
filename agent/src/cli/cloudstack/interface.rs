//! `update_interface_config.sh <ip> <prefixlen> <mtu> [tries]` (contract §11): the MTU of the
//! NIC holding `<ip>/<prefixlen>` changes in the desired state, through the agent, so it
//! persists, is replayed at boot, and the guest DHCP of that NIC advertises it (option 26).
//! Prints the interface name; exit 1 with `Interface with IP <ip> not found` when no NIC of the
//! desired state holds the address.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use super::apply::APPLY_DEADLINE;
use super::fail;
use crate::config::Config;
use crate::intake::protocol::Request;
use crate::intake::socket;
use crate::state::{DesiredState, StateDocument, SCHEMA_VERSION};
use vr_cloudstack::scripts::args;

/// The push name the change is recorded under (push history, logs).
pub const PUSH_NAME: &str = "update_interface_config.sh";

/// Smallest MTU DHCP option 26 may carry (RFC 2132); a smaller NIC MTU is set but not
/// advertised.
const MIN_DHCP_MTU: u32 = 576;

pub async fn update_interface_config(cfg: &Config, argv: &[String]) -> ExitCode {
    let a = match args::update_interface_config(argv) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let req = Request::SetMtu {
        address: a.address,
        prefix: a.prefix,
        mtu: a.mtu,
    };
    let resp = match tokio::time::timeout(APPLY_DEADLINE, socket::call(&cfg.socket, &req)).await {
        Err(_) => return fail("the agent did not answer in time"),
        Ok(Ok(None)) => return fail("the agent is not running"),
        Ok(Err(e)) => return fail(format!("{}: {e}", cfg.socket.display())),
        Ok(Ok(Some(r))) => r,
    };
    match resp.body["device"].as_str() {
        Some(dev) if resp.ok => {
            println!("{dev}");
            ExitCode::SUCCESS
        }
        Some(dev) => {
            println!("{dev}");
            fail(resp.error.unwrap_or_else(|| "MTU change failed".into()))
        }
        None => fail(
            resp.error
                .unwrap_or_else(|| format!("Interface with IP {} not found", a.address)),
        ),
    }
}

/// The native push that sets `mtu` on the NIC holding `address/prefix`, and on the guest DHCP
/// network of that NIC: `(device, push)`, or `None` when no NIC holds it. Pure.
pub fn mtu_push(
    state: &DesiredState,
    address: Ipv4Addr,
    prefix: u8,
    mtu: u32,
) -> Option<(String, StateDocument)> {
    let holds = |i: &crate::state::Interface| {
        i.addresses
            .iter()
            .any(|a| a.addr() == address && a.prefix_len() == prefix)
    };
    let device = state.interfaces.iter().find(|i| holds(i))?.device.clone();
    let mut interfaces = state.interfaces.clone();
    for i in interfaces.iter_mut().filter(|i| i.device == device) {
        i.mtu = Some(mtu);
    }
    let mut dhcp = state.dhcp.clone();
    let mut dhcp_changed = false;
    for n in dhcp.networks.iter_mut().filter(|n| n.device == device) {
        n.mtu = (mtu >= MIN_DHCP_MTU).then_some(mtu);
        dhcp_changed = true;
    }
    // Every other section absent: left as it is (sections added later stay out of this push).
    let mut doc: StateDocument =
        serde_json::from_value(serde_json::json!({ "schema": SCHEMA_VERSION }))
            .expect("a document with only the schema is valid");
    doc.interfaces = Some(interfaces);
    doc.dhcp = dhcp_changed.then_some(dhcp);
    Some((device, doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nic_holding_the_address_and_its_dhcp_get_the_mtu() {
        let state: DesiredState = serde_json::from_value(serde_json::json!({
            "interfaces": [
                {"device": "eth0", "role": "guest", "addresses": ["10.1.1.1/24"]},
                {"device": "eth2", "role": "public", "addresses": ["192.0.2.10/24"], "mtu": 1500}
            ],
            "dhcp": {"networks": [{"device": "eth0", "address": "10.1.1.1/24"}]}
        }))
        .unwrap();
        let (dev, doc) = mtu_push(&state, "10.1.1.1".parse().unwrap(), 24, 1400).unwrap();
        assert_eq!(dev, "eth0");
        assert_eq!(doc.interfaces.as_ref().unwrap()[0].mtu, Some(1400));
        assert_eq!(doc.interfaces.as_ref().unwrap()[1].mtu, Some(1500));
        assert_eq!(doc.dhcp.unwrap().networks[0].mtu, Some(1400));
        let (dev, doc) = mtu_push(&state, "192.0.2.10".parse().unwrap(), 24, 9000).unwrap();
        assert_eq!(dev, "eth2");
        assert!(doc.dhcp.is_none());
        assert!(mtu_push(&state, "192.0.2.10".parse().unwrap(), 25, 1400).is_none());
        assert!(mtu_push(&state, "192.0.2.99".parse().unwrap(), 24, 1400).is_none());
    }
}
