//! The remote-access part of the `vpn` concern: runs the [`RaOp`]s of a plan over the VPN
//! concern's VICI connection, and lists connected users for `show vpn`.
//!
//! A removed user is unloaded first, so it cannot authenticate again, and then each IKE SA
//! authenticated as that user (its EAP or XAuth identity, read from `list-sas`) is
//! terminated by its unique id: no other SA is touched.

use serde_json::json;
use vr_vpn::client::{IkeSa, Vici, ViciError};
use vr_vpn::remote::{is_remote_conn, CONN_V1, CONN_V2};
use vr_vpn::remote_plan::RaOp;
use vr_vpn::remote_vici as rv;
use vr_vpn::vici;

use super::ConcernError;

/// charon said no: the push fails. charon did not answer: it is unavailable (retried).
fn refused_or_unavailable(e: ViciError) -> ConcernError {
    match e {
        ViciError::Refused(..) => ConcernError::Failed(e.to_string()),
        _ => ConcernError::Unavailable(e.to_string()),
    }
}

/// For removals: already gone is fine; no answer is not.
fn gone_ok(r: Result<(), ViciError>) -> Result<(), ConcernError> {
    match r {
        Ok(()) | Err(ViciError::Refused(..)) => Ok(()),
        Err(e) => Err(ConcernError::Unavailable(e.to_string())),
    }
}

async fn terminate(vici: &mut Vici, m: &vici::Message) -> Result<(), ConcernError> {
    gone_ok(
        vici.control(m, vr_vpn::client::REQUEST_TIMEOUT)
            .await
            .map(drop)
            .map_err(|(e, _)| e),
    )
}

/// The road-warrior IKE SAs authenticated as `user`.
pub fn sas_of_user<'a>(sas: &'a [(String, IkeSa)], user: &str) -> Vec<&'a IkeSa> {
    sas.iter()
        .filter(|(conn, sa)| is_remote_conn(conn) && sa.user() == Some(user))
        .map(|(_, sa)| sa)
        .collect()
}

/// Runs the remote-access steps in order.
pub async fn execute(vici: &mut Vici, ops: &[RaOp]) -> Result<(), ConcernError> {
    for op in ops {
        match op {
            RaOp::LoadServer(ra) => {
                let mut msgs = vec![rv::load_psk(ra)];
                msgs.extend(rv::load_key(ra));
                msgs.extend([
                    rv::load_pool(ra),
                    rv::load_conn_v2(ra),
                    rv::load_conn_v1(ra),
                ]);
                for m in &msgs {
                    vici.send(m).await.map_err(refused_or_unavailable)?;
                }
            }
            RaOp::UnloadServer => {
                for c in [CONN_V2, CONN_V1] {
                    terminate(vici, &vici::terminate(c)).await?;
                    gone_ok(vici.send(&vici::unload_conn(c)).await)?;
                }
                gone_ok(vici.send(&rv::unload_pool()).await)?;
                gone_ok(vici.send(&rv::unload_psk()).await)?;
            }
            RaOp::LoadUser(u) => {
                for m in &rv::load_user(u) {
                    vici.send(m).await.map_err(refused_or_unavailable)?;
                }
            }
            RaOp::RemoveUser(name) => {
                for m in &rv::unload_user(name) {
                    gone_ok(vici.send(m).await)?;
                }
                let sas = vici
                    .list_sas_all()
                    .await
                    .map_err(|e| ConcernError::Unavailable(e.to_string()))?;
                for sa in sas_of_user(&sas, name) {
                    tracing::info!(user = %name, ike_id = %sa.uniqueid, "disconnecting removed user");
                    terminate(vici, &rv::terminate_ike_id(&sa.uniqueid)).await?;
                }
            }
        }
    }
    Ok(())
}

/// `check`: charon holds both remote-access connections (users connect or not as they like).
pub async fn health(socket: &std::path::Path) -> Vec<crate::diag::check::Check> {
    use crate::diag::check::Check;
    let conns = match Vici::connect(socket).await {
        Ok(mut v) => v.list_conns().await,
        Err(e) => Err(e),
    };
    let conns = match conns {
        Ok(c) => c,
        Err(e) => return vec![Check::fail("charon reachable", e.to_string())],
    };
    let missing: Vec<&str> = [CONN_V2, CONN_V1]
        .into_iter()
        .filter(|c| !conns.iter().any(|x| x == c))
        .collect();
    let name = "remote-access vpn";
    if missing.is_empty() {
        vec![Check::ok(name, format!("{CONN_V2} and {CONN_V1} loaded"))]
    } else {
        vec![Check::fail(
            name,
            format!("not loaded in charon: {}", missing.join(", ")),
        )]
    }
}

/// `show vpn`'s remote-access part: the server, the configured user names (never their
/// passwords) and the connected users with their virtual IP, seconds connected and bytes.
pub fn status(
    vpn: &vr_vpn::VpnSection,
    sas: &Result<Vec<(String, IkeSa)>, String>,
) -> serde_json::Value {
    let connected: Vec<serde_json::Value> = sas
        .as_ref()
        .map(|all| {
            all.iter()
                .filter(|(conn, sa)| is_remote_conn(conn) && sa.state == "ESTABLISHED")
                .map(|(conn, sa)| {
                    let sum = |f: fn(&vr_vpn::client::ChildSa) -> &Option<String>| -> u64 {
                        sa.child_sas
                            .values()
                            .filter_map(|c| f(c).as_deref()?.parse::<u64>().ok())
                            .sum()
                    };
                    json!({
                        "user": sa.user(),
                        "connection": conn,
                        "virtual_ip": sa.remote_vips.first(),
                        "remote_host": sa.remote_host,
                        "state": sa.state,
                        "ike_uniqueid": sa.uniqueid,
                        "child_ids": sa.child_sas.values().map(|c| c.uniqueid.clone()).collect::<Vec<_>>(),
                        "since_secs": sa.established.as_deref().and_then(|e| e.parse::<u64>().ok()),
                        "bytes_in": sum(|c| &c.bytes_in),
                        "bytes_out": sum(|c| &c.bytes_out),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let users: Vec<&str> = vpn.remote_users.iter().map(|u| u.name.as_str()).collect();
    json!({
        "enabled": vpn.remote_access.is_some(),
        "server_ip": vpn.remote_access.as_ref().map(|r| r.server_ip),
        "pool": vpn.remote_access.as_ref().map(|r| format!("{}-{}", r.pool_first, r.pool_last)),
        "gateway_auth": vpn.remote_access.as_ref().map(|r| if r.certificate.is_some() { "certificate" } else { "psk" }),
        "users": users,
        "connected": connected,
    })
}
