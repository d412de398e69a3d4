//! The remote-access part of the `vpn` section: road warriors (IKEv2 EAP-MSCHAPv2, IKEv1 PSK +
//! XAuth) that get an address from a pool and reach the guest networks behind the router.
//!
//! The server is identified by its public IP (`server_ip`): IKEv1 main mode keys the group PSK
//! on it (no identity is exchanged before the PSK is needed), and IKEv2 clients are told to
//! expect it as the gateway's identity. With a `certificate` the gateway proves itself with it
//! (what native Windows, macOS, iOS and Android IKEv2 clients need); without one, with the PSK
//! (strongSwan's own client, the Android strongSwan app, and IKEv1 "IPsec Xauth PSK" clients).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Secret;

/// `vpn.remote_access`: absent = no remote-access VPN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteAccess {
    /// The public IP clients connect to; also the gateway's IKE identity.
    pub server_ip: Ipv4Addr,
    /// First address handed out to clients.
    pub pool_first: Ipv4Addr,
    /// Last address handed out to clients.
    pub pool_last: Ipv4Addr,
    /// Networks behind the router the clients reach (the guest networks).
    #[schemars(with = "Vec<String>")]
    pub local_cidrs: Vec<Ipv4Net>,
    /// DNS server given to clients (the router's guest address); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Ipv4Addr>,
    /// Group pre-shared key: IKEv1 main mode, and the gateway's IKEv2 proof without a
    /// certificate. Never logged or printed.
    pub psk: Secret,
    /// The gateway's certificate for IKEv2; absent: the PSK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ServerCertificate>,
}

/// A PEM certificate (with a SAN holding `server_ip`, EKU serverAuth) and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerCertificate {
    /// PEM, the leaf first.
    pub cert_pem: String,
    /// PEM private key. Never logged or printed.
    pub key_pem: Secret,
}

/// One road-warrior user: the same password serves EAP-MSCHAPv2 and XAuth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteUser {
    pub name: String,
    /// Never logged or printed.
    pub password: Secret,
}

/// Names charon knows the remote-access objects by.
pub const CONN_V2: &str = "ra-ikev2";
pub const CONN_V1: &str = "ra-ikev1";
pub const POOL: &str = "ra-pool";
pub const PSK_ID: &str = "ra-psk";

/// Whether `conn` is one of the remote-access connections.
pub fn is_remote_conn(conn: &str) -> bool {
    conn == CONN_V2 || conn == CONN_V1
}

/// The ids of a user's two secrets (EAP and XAuth).
pub fn user_secret_ids(name: &str) -> [String; 2] {
    [format!("ra-eap-{name}"), format!("ra-xauth-{name}")]
}

/// Characters a user name may hold (CloudStack's rule; they are also safe in every log).
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

impl crate::client::IkeSa {
    /// The user a road-warrior IKE SA authenticated as: its EAP or XAuth identity, else its
    /// IKE identity.
    pub fn user(&self) -> Option<&str> {
        self.remote_eap_id
            .as_deref()
            .or(self.remote_xauth_id.as_deref())
            .or(self.remote_id.as_deref())
    }
}
