//! The remote-access part of the VPN plan: pure, from the applied and desired sections.
//!
//! The server (PSK, pool, both connections) is one unit: a change reloads it and ends the
//! clients' SAs (their pool or proof changed under them). Users are each their own unit: a
//! user added or whose password changed is loaded (a password change keeps the user's SA
//! up: it was authenticated with the old one), a user removed is unloaded and then every IKE
//! SA authenticated as that user is terminated. Nothing else is touched.

use std::fmt;

use crate::model::VpnSection;
use crate::remote::{user_secret_ids, RemoteAccess, RemoteUser, CONN_V1, CONN_V2, POOL, PSK_ID};

/// One remote-access step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaOp {
    /// Load the PSK (and key), the pool and both connections.
    LoadServer(RemoteAccess),
    /// Terminate the clients' SAs, unload both connections, the pool and the PSK.
    UnloadServer,
    /// Load (or replace) one user's EAP and XAuth secrets.
    LoadUser(RemoteUser),
    /// Unload one user's secrets, then terminate the IKE SAs authenticated as that user.
    RemoveUser(String),
}

/// The remote-access steps from `applied` to `desired`, in the order they run: server
/// changes first (so users find their connections), then users in name order.
pub fn plan_remote(applied: &VpnSection, desired: &VpnSection) -> Vec<RaOp> {
    let mut ops = Vec::new();
    match (&applied.remote_access, &desired.remote_access) {
        (Some(_), None) => ops.push(RaOp::UnloadServer),
        (None, Some(d)) => ops.push(RaOp::LoadServer(d.clone())),
        (Some(a), Some(d)) if a != d => {
            ops.push(RaOp::UnloadServer);
            ops.push(RaOp::LoadServer(d.clone()));
        }
        _ => {}
    }
    let mut names: Vec<&str> = applied
        .remote_users
        .iter()
        .chain(&desired.remote_users)
        .map(|u| u.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let old = applied.remote_users.iter().find(|u| u.name == name);
        let new = desired.remote_users.iter().find(|u| u.name == name);
        match (old, new) {
            (Some(_), None) => ops.push(RaOp::RemoveUser(name.to_string())),
            (None, Some(n)) => ops.push(RaOp::LoadUser(n.clone())),
            (Some(o), Some(n)) if o != n => ops.push(RaOp::LoadUser(n.clone())),
            _ => {}
        }
    }
    // A server loaded anew finds the users' secrets loaded too: charon may have lost them
    // with the server (a restart), and loading an unchanged secret disturbs no SA.
    if ops.iter().any(|o| matches!(o, RaOp::LoadServer(_))) {
        for u in &desired.remote_users {
            let planned = ops
                .iter()
                .any(|o| matches!(o, RaOp::LoadUser(x) if x.name == u.name));
            if !planned {
                ops.push(RaOp::LoadUser(u.clone()));
            }
        }
    }
    ops
}

/// swanctl-like lines; no secret appears.
impl fmt::Display for RaOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaOp::LoadServer(ra) => {
                writeln!(f, "swanctl --load-shared {PSK_ID}  # psk <redacted>")?;
                if ra.certificate.is_some() {
                    writeln!(f, "swanctl --load-key  # server certificate key <redacted>")?;
                }
                writeln!(
                    f,
                    "swanctl --load-pool {POOL}  # {}-{}",
                    ra.pool_first, ra.pool_last
                )?;
                let auth = if ra.certificate.is_some() {
                    "certificate"
                } else {
                    "psk"
                };
                let nets: Vec<String> = ra.local_cidrs.iter().map(|n| n.to_string()).collect();
                writeln!(
                    f,
                    "swanctl --load-conn {CONN_V2}  # {} eap-mschapv2, gateway by {auth}, -> {}",
                    ra.server_ip,
                    nets.join(",")
                )?;
                writeln!(
                    f,
                    "swanctl --load-conn {CONN_V1}  # {} psk + xauth, -> {}",
                    ra.server_ip,
                    nets.join(",")
                )
            }
            RaOp::UnloadServer => {
                for c in [CONN_V2, CONN_V1] {
                    writeln!(f, "swanctl --terminate --ike {c} --force")?;
                    writeln!(f, "swanctl --unload-conn {c}")?;
                }
                writeln!(f, "swanctl --unload-pool {POOL}")?;
                writeln!(f, "swanctl --unload-shared {PSK_ID}")
            }
            RaOp::LoadUser(u) => {
                for id in user_secret_ids(&u.name) {
                    writeln!(f, "swanctl --load-shared {id}  # password <redacted>")?;
                }
                Ok(())
            }
            RaOp::RemoveUser(name) => {
                for id in user_secret_ids(name) {
                    writeln!(f, "swanctl --unload-shared {id}")?;
                }
                writeln!(
                    f,
                    "swanctl --terminate --ike-id <each IKE SA of user {name}> --force"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(ra: Option<&str>, users: &[(&str, &str)]) -> VpnSection {
        let users: Vec<serde_json::Value> = users
            .iter()
            .map(|(n, p)| serde_json::json!({"name": n, "password": p}))
            .collect();
        let ra = ra.map(|psk| {
            serde_json::json!({"server_ip":"192.0.2.10","pool_first":"10.1.2.1","pool_last":"10.1.2.9",
                "local_cidrs":["10.1.1.0/24"],"dns":"10.1.1.1","psk":psk})
        });
        serde_json::from_value(serde_json::json!({"remote_access": ra, "remote_users": users}))
            .unwrap()
    }

    fn text(ops: &[RaOp]) -> String {
        ops.iter().map(|o| o.to_string()).collect()
    }

    #[test]
    fn one_user_at_a_time_and_nothing_else() {
        let a = section(Some("psk-1"), &[("alice", "pw-a"), ("bob", "pw-b")]);
        assert!(plan_remote(&a, &a).is_empty());
        // Adding carol touches only carol.
        let b = section(
            Some("psk-1"),
            &[("alice", "pw-a"), ("bob", "pw-b"), ("carol", "pw-c")],
        );
        let p = plan_remote(&a, &b);
        assert_eq!(p.len(), 1);
        assert!(matches!(&p[0], RaOp::LoadUser(u) if u.name == "carol"));
        // Removing bob: only bob, his secrets then his SAs.
        let c = section(Some("psk-1"), &[("alice", "pw-a")]);
        let p = plan_remote(&a, &c);
        assert_eq!(p, [RaOp::RemoveUser("bob".into())]);
        assert_eq!(
            text(&p),
            "swanctl --unload-shared ra-eap-bob\nswanctl --unload-shared ra-xauth-bob\n\
             swanctl --terminate --ike-id <each IKE SA of user bob> --force\n"
        );
        // A new password reloads that user only; no secret is printed.
        let d = section(Some("psk-1"), &[("alice", "pw-a2"), ("bob", "pw-b")]);
        let p = plan_remote(&a, &d);
        assert!(matches!(&p[..], [RaOp::LoadUser(u)] if u.name == "alice"));
        assert!(!text(&p).contains("pw-a2"));
        // A new PSK reloads the server (and the users with it); disabling unloads it only.
        let e = section(Some("psk-2"), &[("alice", "pw-a"), ("bob", "pw-b")]);
        let p = plan_remote(&a, &e);
        assert!(matches!(
            &p[..],
            [
                RaOp::UnloadServer,
                RaOp::LoadServer(_),
                RaOp::LoadUser(_),
                RaOp::LoadUser(_)
            ]
        ));
        assert!(!text(&p).contains("psk-2"), "{}", text(&p));
        let f = section(None, &[("alice", "pw-a"), ("bob", "pw-b")]);
        assert_eq!(plan_remote(&a, &f), [RaOp::UnloadServer]);
    }
}
