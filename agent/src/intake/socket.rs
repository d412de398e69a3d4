//! The agent's Unix socket (`--socket`, mode 0600): accepts connections, reads one request
//! line each, hands it to the main loop (which owns the engine) and writes the answer back.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::protocol::{Request, Response, MAX_REQUEST_BYTES};

/// A request from a socket client with the channel for its answer.
pub type Job = (Request, oneshot::Sender<Response>);

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // umask-independent: bind, then tighten before any client can be trusted with it.
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves connections until the process ends.
pub async fn serve(listener: UnixListener, jobs: mpsc::Sender<Job>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let jobs = jobs.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, jobs).await {
                        tracing::debug!("socket client: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("socket accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(stream: UnixStream, jobs: mpsc::Sender<Job>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES + 1));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    let response = if line.len() as u64 > MAX_REQUEST_BYTES {
        Response {
            ok: false,
            error: Some(format!("request larger than {MAX_REQUEST_BYTES} bytes")),
            body: Default::default(),
        }
    } else {
        match serde_json::from_slice::<Request>(&line) {
            Err(e) => Response {
                ok: false,
                error: Some(format!("bad request: {e}")),
                body: Default::default(),
            },
            Ok(req) => {
                let (tx, rx) = oneshot::channel();
                if jobs.send((req, tx)).await.is_err() {
                    Response {
                        ok: false,
                        error: Some("agent is shutting down".into()),
                        body: Default::default(),
                    }
                } else {
                    rx.await.unwrap_or(Response {
                        ok: false,
                        error: Some("agent dropped the request".into()),
                        body: Default::default(),
                    })
                }
            }
        }
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Client side: sends one request and waits for the answer. `Ok(None)` means no agent is
/// listening (socket missing or connection refused).
pub async fn call(path: &PathBuf, req: &Request) -> std::io::Result<Option<Response>> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.shutdown().await?;
    let mut buf = Vec::new();
    BufReader::new(read).read_to_end(&mut buf).await?;
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
