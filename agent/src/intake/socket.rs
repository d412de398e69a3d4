//! The agent's Unix socket (`--socket`, mode 0600): accepts connections, reads one request
//! line each, hands it to the main loop (which owns the engine) and writes the answer back.

use std::path::{Path, PathBuf};

use std::time::Duration;

use std::os::fd::OwnedFd;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore, SemaphorePermit};

use super::passed_file;
use super::protocol::{PushFile, Request, Response, MAX_HEADER_BYTES, MAX_REQUEST_BYTES};
use crate::parse::MAX_PUSH_BYTES;

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

/// Push bodies in memory at once (socket and spool together): a dozen clients each sending
/// 16 MiB must not cost 16 MiB each. The main loop takes its permit without waiting (see
/// [`try_push_permit`]); socket clients wait for theirs.
static PUSH_MEMORY: Semaphore = Semaphore::const_new(1);

/// How long a client may take to send the rest of a request once it started a large one
/// (holding the push permit meanwhile).
const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// The first read of a connection (the rest of a longer request line follows through the
/// buffered reader).
const FIRST_READ: usize = 8 * 1024;

/// The permit for holding one push in memory, if free right now.
pub fn try_push_permit() -> Option<SemaphorePermit<'static>> {
    PUSH_MEMORY.try_acquire().ok()
}

fn refused(error: String) -> Response {
    Response {
        ok: false,
        error: Some(error),
        body: Default::default(),
    }
}

async fn handle(stream: UnixStream, jobs: mpsc::Sender<Job>) -> std::io::Result<()> {
    let reading = crate::timing::phase("intake-read");
    // The first read is a recvmsg: a `push` of a file comes with the file's descriptor.
    let (first, passed) = passed_file::first_read(&stream, FIRST_READ).await?;
    let (read, mut write) = stream.into_split();
    let request = read_request(AsyncReadExt::chain(&first[..], read), passed).await;
    drop(reading);
    let response = match request {
        Err(resp) => resp,
        Ok((req, permit)) => {
            let (tx, rx) = oneshot::channel();
            let resp = if jobs.send((req, tx)).await.is_err() {
                refused("agent is shutting down".into())
            } else {
                rx.await
                    .unwrap_or_else(|_| refused("agent dropped the request".into()))
            };
            drop(permit);
            resp
        }
    };
    let _answering = crate::timing::phase("answer");
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// The push permit for a push's body: the one a long request line already took (a second
/// acquire would wait for itself), else one awaited now.
async fn hold_permit(
    held: Option<SemaphorePermit<'static>>,
) -> Result<SemaphorePermit<'static>, Response> {
    match held {
        Some(p) => Ok(p),
        None => PUSH_MEMORY
            .acquire()
            .await
            .map_err(|e| refused(e.to_string())),
    }
}

/// Reads one request: a line of at most [`MAX_HEADER_BYTES`], or, holding the push permit, an
/// inline `apply` line of at most [`MAX_REQUEST_BYTES`] or a `push` line and its body.
async fn read_request(
    read: impl AsyncRead + Unpin,
    passed: Option<OwnedFd>,
) -> Result<(Request, Option<SemaphorePermit<'static>>), Response> {
    let io = |e: std::io::Error| refused(format!("cannot read request: {e}"));
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_HEADER_BYTES)
        .read_until(b'\n', &mut line)
        .await
        .map_err(io)?;
    let mut permit = None;
    if line.len() as u64 == MAX_HEADER_BYTES && line.last() != Some(&b'\n') {
        // A long line: an inline apply. Only one is held in memory at a time.
        permit = Some(
            PUSH_MEMORY
                .acquire()
                .await
                .map_err(|e| refused(e.to_string()))?,
        );
        let mut rest = (&mut reader).take(MAX_REQUEST_BYTES + 1 - MAX_HEADER_BYTES);
        tokio::time::timeout(BODY_DEADLINE, rest.read_until(b'\n', &mut line))
            .await
            .map_err(|_| refused(format!("request not complete within {BODY_DEADLINE:?}")))?
            .map_err(io)?;
        if line.len() as u64 > MAX_REQUEST_BYTES {
            return Err(refused(format!(
                "request larger than {MAX_REQUEST_BYTES} bytes (send a large push as a `push` request, as `vr-agent apply` does)"
            )));
        }
    }
    let req = serde_json::from_slice::<Request>(&line).map_err(|e| {
        refused(format!(
            "bad request: {}",
            crate::excerpt::truncate(&e.to_string())
        ))
    })?;
    drop(line);
    let Request::Push {
        name,
        dry_run,
        bytes,
        file,
    } = req
    else {
        return Ok((req, permit));
    };
    if file {
        let Some(fd) = passed else {
            return Err(refused(format!(
                "{name}: the request names a passed file but no file descriptor came with it"
            )));
        };
        let permit = hold_permit(permit).await?;
        // A file on a hung mount must not hold the permit for ever: read off the runtime's
        // threads, within the same deadline as a body sent through the socket.
        let read = tokio::task::spawn_blocking(move || {
            passed_file::read_push(fd, &name, MAX_PUSH_BYTES).map(|text| (name, text))
        });
        let (name, text) = tokio::time::timeout(BODY_DEADLINE, read)
            .await
            .map_err(|_| refused(format!("push file not read within {BODY_DEADLINE:?}")))?
            .map_err(|e| refused(format!("push file not read: {e}")))?
            .map_err(refused)?;
        return Ok((
            Request::ApplyPassed {
                dry_run,
                name,
                text: std::sync::Arc::new(text),
            },
            Some(permit),
        ));
    }
    if bytes > MAX_PUSH_BYTES as u64 {
        return Err(refused(format!(
            "{name}: (document): push of {bytes} bytes is larger than the {MAX_PUSH_BYTES}-byte limit"
        )));
    }
    let permit = hold_permit(permit).await?;
    let mut body = Vec::with_capacity(bytes as usize);
    let mut limited = (&mut reader).take(bytes);
    tokio::time::timeout(BODY_DEADLINE, limited.read_to_end(&mut body))
        .await
        .map_err(|_| {
            refused(format!(
                "{name}: push not received within {BODY_DEADLINE:?}"
            ))
        })?
        .map_err(io)?;
    if body.len() as u64 != bytes {
        return Err(refused(format!(
            "{name}: push ended after {} of {bytes} bytes",
            body.len()
        )));
    }
    let text = String::from_utf8(body).map_err(|e| {
        refused(format!(
            "{name}: (document): not UTF-8 at byte {}",
            e.utf8_error().valid_up_to()
        ))
    })?;
    Ok((
        Request::Apply {
            dry_run,
            pushes: vec![PushFile { name, text }],
        },
        Some(permit),
    ))
}

/// Client side: the agent's socket, or `None` when no agent is listening (socket missing or
/// connection refused).
async fn connect(path: &PathBuf) -> std::io::Result<Option<UnixStream>> {
    match UnixStream::connect(path).await {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// How long a client waits for the agent's answer to a query (`status`, `show`, `check`...):
/// the agent answers between pushes, and no push of the sizes it accepts takes this long. A
/// wedged agent then gives the operator an error instead of a shell that never returns.
pub const CALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Client side: sends one request and waits for the answer, at most [`CALL_DEADLINE`].
/// `Ok(None)` means no agent is listening (socket missing or connection refused).
pub async fn call(path: &PathBuf, req: &Request) -> std::io::Result<Option<Response>> {
    tokio::time::timeout(CALL_DEADLINE, call_unbounded(path, req))
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the agent did not answer within {} s",
                    CALL_DEADLINE.as_secs()
                ),
            ))
        })
}

async fn call_unbounded(path: &PathBuf, req: &Request) -> std::io::Result<Option<Response>> {
    let Some(stream) = connect(path).await? else {
        return Ok(None);
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

/// A push's answer. The agent may answer (a refusal) before reading everything: its answer
/// counts, not the broken pipe (`sent`); without an answer, the send's error is the one.
async fn read_answer(
    read: tokio::net::unix::OwnedReadHalf,
    sent: std::io::Result<()>,
) -> std::io::Result<Option<Response>> {
    let mut buf = Vec::new();
    BufReader::new(read).read_to_end(&mut buf).await?;
    match serde_json::from_slice(&buf) {
        Ok(resp) => Ok(Some(resp)),
        Err(e) => Err(sent
            .err()
            .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
    }
}

/// Client side of a `push` of a regular file: the request line with the file's descriptor
/// (see [`passed_file`]); the agent reads the file itself. `Ok(None)`: no agent.
pub async fn push_file(
    path: &PathBuf,
    name: &str,
    dry_run: bool,
    file: &std::fs::File,
    len: u64,
) -> std::io::Result<Option<Response>> {
    let Some(stream) = connect(path).await? else {
        return Ok(None);
    };
    let req = Request::Push {
        name: name.to_string(),
        dry_run,
        bytes: len,
        file: true,
    };
    let mut line = serde_json::to_vec(&req)?;
    line.push(b'\n');
    let sent = passed_file::send_with_fd(&stream, &line, file).await?;
    let (read, mut write) = stream.into_split();
    let sent = async {
        write.write_all(&line[sent..]).await?;
        write.shutdown().await
    }
    .await;
    read_answer(read, sent).await
}

/// Client side of a `push`: the request line, then the push raw. `Ok(None)`: no agent.
pub async fn push(
    path: &PathBuf,
    name: &str,
    dry_run: bool,
    text: &str,
) -> std::io::Result<Option<Response>> {
    let Some(stream) = connect(path).await? else {
        return Ok(None);
    };
    let (read, mut write) = stream.into_split();
    let req = Request::Push {
        name: name.to_string(),
        dry_run,
        bytes: text.len() as u64,
        file: false,
    };
    let mut line = serde_json::to_vec(&req)?;
    line.push(b'\n');
    let sent = async {
        write.write_all(&line).await?;
        write.write_all(text.as_bytes()).await?;
        write.shutdown().await
    }
    .await;
    read_answer(read, sent).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `push` whose request line is over the header limit holds the one push permit from
    /// the line on, and must go on with it (a second acquire would wait for ever, and every
    /// later push with it).
    #[tokio::test]
    async fn a_long_push_line_keeps_its_one_permit() {
        for file in [false, true] {
            let (client, server) = UnixStream::pair().unwrap();
            let (jobs, mut rx) = mpsc::channel(1);
            tokio::spawn(handle(server, jobs));
            let name = "a".repeat(MAX_HEADER_BYTES as usize + 10);
            let line = format!(
                "{{\"op\":\"push\",\"name\":\"{name}\",\"dry_run\":false,\"bytes\":0,\"file\":{file}}}\n"
            );
            let (mut read, mut write) = client.into_split();
            write.write_all(line.as_bytes()).await.unwrap();
            write.shutdown().await.unwrap();
            if !file {
                let (_, answer) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                    .await
                    .expect("the push reached the engine")
                    .unwrap();
                let _ = answer.send(Response {
                    ok: true,
                    error: None,
                    body: Default::default(),
                });
            }
            let mut out = String::new();
            tokio::time::timeout(Duration::from_secs(5), read.read_to_string(&mut out))
                .await
                .expect("answered")
                .unwrap();
            if file {
                assert!(out.contains("no file descriptor came with it"), "{out}");
            } else {
                assert!(out.contains("\"ok\":true"), "{out}");
            }
            assert!(try_push_permit().is_some(), "the permit came back");
        }
    }
}
