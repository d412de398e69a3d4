//! Every call the agent makes to FRR goes through here: `vtysh` run as a tokio child process
//! (the agent's one task is never blocked on it), with a deadline after which the child is
//! killed and FRR counts as unavailable (a hung ospfd must not wedge the agent), and with
//! configuration fed on standard input (`vtysh -f /dev/stdin`): OSPF keys never appear on a
//! command line, which any local user can read in `/proc/*/cmdline`.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::concern::ConcernError;

/// Reads (`show ...`) answer in milliseconds on a healthy FRR.
pub const READ_DEADLINE: Duration = Duration::from_secs(2);
/// A configuration change, or `clear ip ospf process`.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// Why vtysh gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum VtyshError {
    /// vtysh: {0}
    #[error("vtysh: {0}")]
    Run(std::io::Error),
    /// FRR did not answer vtysh within {0} s (daemon hung?); vtysh was killed
    #[error("FRR did not answer vtysh within {0} s (daemon hung?); vtysh was killed")]
    Deadline(u64),
}

impl From<VtyshError> for ConcernError {
    fn from(e: VtyshError) -> Self {
        ConcernError::Unavailable(e.to_string())
    }
}

/// How to reach FRR's vty sockets.
#[derive(Debug, Clone, Default)]
pub struct Vtysh {
    /// `vtysh --vty_socket DIR`; None = FRR's default.
    pub vty_dir: Option<PathBuf>,
}

impl Vtysh {
    /// Runs `vtysh [--vty_socket DIR] ARGS`, writing `stdin` to it, and waits at most
    /// `deadline`. Only a missing program or a passed deadline are errors here.
    pub async fn raw(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        deadline: Duration,
    ) -> Result<Output, VtyshError> {
        let mut c = Command::new("vtysh");
        if let Some(d) = &self.vty_dir {
            c.arg("--vty_socket").arg(d);
        }
        c.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the future at the deadline kills the child (tokio reaps it).
            .kill_on_drop(true);
        let mut child = c.spawn().map_err(VtyshError::Run)?;
        let input = stdin.map(str::to_owned);
        let mut pipe = child.stdin.take();
        let run = async move {
            if let (Some(text), Some(p)) = (input, pipe.as_mut()) {
                // A vtysh that exits early (daemon gone) closes the pipe: its output says why.
                let _ = p.write_all(text.as_bytes()).await;
            }
            drop(pipe);
            child.wait_with_output().await
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(VtyshError::Run(e)),
            Err(_) => Err(VtyshError::Deadline(deadline.as_secs())),
        }
    }

    /// `vtysh -c CMD...` -> stdout; FRR unreachable is `Unavailable`, a refused command
    /// `Failed`.
    pub async fn show(&self, cmds: &[&str]) -> Result<String, ConcernError> {
        let args: Vec<&str> = cmds.iter().flat_map(|c| ["-c", *c]).collect();
        let out = self.raw(&args, None, READ_DEADLINE).await?;
        check(&out)
    }

    /// Exec-mode commands that change state (`clear ip ospf process`).
    pub async fn exec(&self, cmds: &[&str]) -> Result<String, ConcernError> {
        let args: Vec<&str> = cmds.iter().flat_map(|c| ["-c", *c]).collect();
        let out = self.raw(&args, None, WRITE_DEADLINE).await?;
        check(&out)
    }

    /// Sends configuration lines (`vtysh -f /dev/stdin`: it starts in configure mode and
    /// exits non-zero when any line is refused).
    pub async fn configure(&self, script: &str) -> Result<String, ConcernError> {
        let out = self
            .raw(&["-f", "/dev/stdin"], Some(script), WRITE_DEADLINE)
            .await?;
        check(&out)
    }
}

/// Whether vtysh reached no daemon at all.
pub fn unreachable(out: &Output) -> Option<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    (stderr.contains("failed to connect") || stdout.contains("failed to connect"))
        .then(|| format!("FRR not reachable: {}", stderr.trim()))
}

/// stdout of a successful call; the refusal (keys redacted) otherwise.
pub fn check(out: &Output) -> Result<String, ConcernError> {
    if let Some(why) = unreachable(out) {
        return Err(ConcernError::Unavailable(why));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // With -c, vtysh reports refused lines with a leading `%`; with -f, by exit status and a
    // `line N: ...` message on stderr.
    let refused = stdout
        .lines()
        .chain(stderr.lines())
        .any(|l| l.trim_start().starts_with('%'));
    if !out.status.success() || refused {
        let why: Vec<&str> = stdout
            .lines()
            .chain(stderr.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(12)
            .collect();
        return Err(ConcernError::Failed(format!(
            "vtysh refused ({}): {}",
            out.status,
            vr_ospf::render::redact(&why.join("; "))
        )));
    }
    Ok(stdout)
}
