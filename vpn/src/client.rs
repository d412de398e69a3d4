//! A thin VICI client (`rsvici`) for charon: sends the messages of [`crate::vici`], checks
//! every answer, and reads SA status. The PSK is never logged.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::vici::Message;

/// Errors talking to charon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViciError {
    /// charon's VICI socket {0} cannot be reached: {1}
    #[error("charon's VICI socket {0} cannot be reached: {1}")]
    Unreachable(String, String),
    /// charon refused {0}: {1}
    #[error("charon refused {0}: {1}")]
    Refused(String, String),
    /// VICI {0} failed: {1}
    #[error("VICI {0} failed: {1}")]
    Protocol(String, String),
}

/// The generic answer of a VICI command.
#[derive(Debug, Deserialize)]
struct Ack {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errmsg: Option<String>,
}

/// A `control-log` event streamed by `initiate` / `terminate`.
#[derive(Debug, Deserialize)]
struct ControlLog {
    #[serde(default)]
    msg: String,
}

/// One CHILD SA of `list-sas`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSa {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub uniqueid: String,
    #[serde(default)]
    pub state: String,
    #[serde(default, rename = "bytes-in")]
    pub bytes_in: Option<String>,
    #[serde(default, rename = "bytes-out")]
    pub bytes_out: Option<String>,
    #[serde(default, rename = "packets-in")]
    pub packets_in: Option<String>,
    #[serde(default, rename = "packets-out")]
    pub packets_out: Option<String>,
    #[serde(default, rename = "install-time")]
    pub install_time: Option<String>,
    #[serde(default, rename = "local-ts")]
    pub local_ts: Vec<String>,
    #[serde(default, rename = "remote-ts")]
    pub remote_ts: Vec<String>,
}

/// One IKE SA of `list-sas`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSa {
    #[serde(default)]
    pub uniqueid: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub state: String,
    #[serde(default, rename = "local-host")]
    pub local_host: String,
    #[serde(default, rename = "remote-host")]
    pub remote_host: String,
    /// Seconds since the IKE SA was established.
    #[serde(default)]
    pub established: Option<String>,
    #[serde(default, rename = "remote-id")]
    pub remote_id: Option<String>,
    /// The EAP identity (IKEv2 road warriors), when it differs from `remote-id`.
    #[serde(default, rename = "remote-eap-id")]
    pub remote_eap_id: Option<String>,
    /// The XAuth identity (IKEv1 road warriors).
    #[serde(default, rename = "remote-xauth-id")]
    pub remote_xauth_id: Option<String>,
    /// Virtual IPs handed to the peer.
    #[serde(default, rename = "remote-vips")]
    pub remote_vips: Vec<String>,
    #[serde(default, rename = "child-sas")]
    pub child_sas: BTreeMap<String, ChildSa>,
}

/// Longest wait for any answer from charon. A stopped or wedged charon accepts the
/// connection (the kernel queues it) and then never answers: without this the agent would
/// wait forever. Listing 50 tunnels' SAs takes milliseconds, so 5 s is generous.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one request under [`REQUEST_TIMEOUT`] (or `limit`); a timeout is `Unreachable`.
async fn deadline<T>(
    path: &str,
    what: &str,
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, ViciError>>,
) -> Result<T, ViciError> {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| {
        Err(ViciError::Unreachable(
            path.to_string(),
            format!("no answer to {what} within {} s", limit.as_secs()),
        ))
    })
}

/// A connected client.
pub struct Vici {
    client: rsvici::Client,
    path: String,
}

impl std::fmt::Debug for Vici {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vici({})", self.path)
    }
}

impl Vici {
    pub async fn connect(path: &Path) -> Result<Vici, ViciError> {
        let p = path.display().to_string();
        let client = tokio::time::timeout(Duration::from_secs(3), rsvici::unix::connect(path))
            .await
            .map_err(|_| ViciError::Unreachable(p.clone(), "timeout".into()))?
            .map_err(|e| ViciError::Unreachable(p.clone(), e.to_string()))?;
        Ok(Vici { client, path: p })
    }

    /// Sends a command whose answer is `success`/`errmsg`.
    pub async fn send(&mut self, m: &Message) -> Result<(), ViciError> {
        let client = &mut self.client;
        let ack: Ack = deadline(&self.path, m.command, REQUEST_TIMEOUT, async {
            client
                .request(m.command, &m.body)
                .await
                .map_err(|e| ViciError::Protocol(m.command.into(), e.to_string()))
        })
        .await?;
        if ack.success {
            Ok(())
        } else {
            Err(ViciError::Refused(
                m.command.into(),
                ack.errmsg.unwrap_or_default(),
            ))
        }
    }

    /// `initiate` / `terminate`: streams `control-log`; failure is the stream's error. Returns
    /// the log lines (charon's reason when it fails). Waits at most `limit` (the message's own
    /// charon-side timeout plus a margin).
    pub async fn control(
        &mut self,
        m: &Message,
        limit: Duration,
    ) -> Result<Vec<String>, (ViciError, Vec<String>)> {
        let stream = self
            .client
            .stream_request::<_, ControlLog>(m.command, "control-log", &m.body);
        futures::pin_mut!(stream);
        let mut log = Vec::new();
        let until = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(until, stream.try_next()).await {
                Ok(Ok(Some(l))) => log.push(l.msg),
                Ok(Ok(None)) => return Ok(log),
                Ok(Err(e)) => {
                    return Err((ViciError::Refused(m.command.into(), e.to_string()), log))
                }
                Err(_) => {
                    let why = format!("no answer to {} within {} s", m.command, limit.as_secs());
                    return Err((ViciError::Unreachable(self.path.clone(), why), log));
                }
            }
        }
    }

    /// `list-sas`: IKE SAs by connection name.
    pub async fn list_sas(&mut self) -> Result<BTreeMap<String, IkeSa>, ViciError> {
        let path = self.path.clone();
        deadline(
            &path,
            "list-sas",
            REQUEST_TIMEOUT,
            self.list_sas_unbounded(),
        )
        .await
    }

    async fn list_sas_unbounded(&mut self) -> Result<BTreeMap<String, IkeSa>, ViciError> {
        let stream =
            self.client
                .stream_request::<(), BTreeMap<String, IkeSa>>("list-sas", "list-sa", ());
        futures::pin_mut!(stream);
        let mut out = BTreeMap::new();
        while let Some(ev) = stream
            .try_next()
            .await
            .map_err(|e| ViciError::Protocol("list-sas".into(), e.to_string()))?
        {
            out.extend(ev);
        }
        Ok(out)
    }

    /// `list-sas`: every IKE SA with its connection's name (road-warrior connections have one
    /// per client, which [`Vici::list_sas`] would fold into one).
    pub async fn list_sas_all(&mut self) -> Result<Vec<(String, IkeSa)>, ViciError> {
        let path = self.path.clone();
        let client = &mut self.client;
        deadline(&path, "list-sas", REQUEST_TIMEOUT, async move {
            let stream =
                client.stream_request::<(), BTreeMap<String, IkeSa>>("list-sas", "list-sa", ());
            futures::pin_mut!(stream);
            let mut out = Vec::new();
            while let Some(ev) = stream
                .try_next()
                .await
                .map_err(|e| ViciError::Protocol("list-sas".into(), e.to_string()))?
            {
                out.extend(ev);
            }
            Ok(out)
        })
        .await
    }

    /// `list-conns`: names of the loaded connections.
    pub async fn list_conns(&mut self) -> Result<Vec<String>, ViciError> {
        let path = self.path.clone();
        deadline(
            &path,
            "list-conns",
            REQUEST_TIMEOUT,
            self.list_conns_unbounded(),
        )
        .await
    }

    async fn list_conns_unbounded(&mut self) -> Result<Vec<String>, ViciError> {
        let stream = self
            .client
            .stream_request::<(), BTreeMap<String, serde::de::IgnoredAny>>(
                "list-conns",
                "list-conn",
                (),
            );
        futures::pin_mut!(stream);
        let mut out = Vec::new();
        while let Some(ev) = stream
            .try_next()
            .await
            .map_err(|e| ViciError::Protocol("list-conns".into(), e.to_string()))?
        {
            out.extend(ev.into_keys());
        }
        Ok(out)
    }
}
