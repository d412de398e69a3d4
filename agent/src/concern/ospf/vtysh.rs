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
#[derive(Debug, Clone)]
pub struct Vtysh {
    /// `vtysh --vty_socket DIR`; None = FRR's default.
    pub vty_dir: Option<PathBuf>,
    /// The program (`vtysh`, found on PATH).
    pub program: PathBuf,
}

impl Vtysh {
    pub fn new(vty_dir: Option<PathBuf>) -> Vtysh {
        Vtysh {
            vty_dir,
            program: PathBuf::from("vtysh"),
        }
    }

    /// Runs `vtysh [--vty_socket DIR] ARGS`, writing `stdin` to it, and waits at most
    /// `deadline`. Only a missing program or a passed deadline are errors here.
    pub async fn raw(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        deadline: Duration,
    ) -> Result<Output, VtyshError> {
        let mut c = Command::new(&self.program);
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
        check(&out, true)
    }

    /// Exec-mode commands that change state (`clear ip ospf process`).
    pub async fn exec(&self, cmds: &[&str]) -> Result<String, ConcernError> {
        let args: Vec<&str> = cmds.iter().flat_map(|c| ["-c", *c]).collect();
        let out = self.raw(&args, None, WRITE_DEADLINE).await?;
        check(&out, true)
    }

    /// Sends configuration lines (`vtysh -f /dev/stdin`: it starts in configure mode and
    /// exits non-zero when any line is refused).
    pub async fn configure(&self, script: &str) -> Result<String, ConcernError> {
        let out = self
            .raw(&["-f", "/dev/stdin"], Some(script), WRITE_DEADLINE)
            .await?;
        // Its exit status is authoritative (13 when a line was refused); what FRR merely
        // warns about is left to the read-back verification.
        check(&out, false)
    }
}

/// Whether vtysh reached no daemon at all.
pub fn unreachable(out: &Output) -> Option<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    (stderr.contains("failed to connect") || stdout.contains("failed to connect"))
        .then(|| format!("FRR not reachable: {}", stderr.trim()))
}

/// stdout of a successful call; the refusal (keys redacted) otherwise. `percent`: a line
/// starting with `%` is a refusal (vtysh -c reports refused commands that way).
pub fn check(out: &Output, percent: bool) -> Result<String, ConcernError> {
    if let Some(why) = unreachable(out) {
        return Err(ConcernError::Unavailable(why));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // With -c, vtysh reports refused lines with a leading `%`; with -f, by exit status and a
    // `line N: ...` message on stderr.
    let refused = percent
        && stdout
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for vtysh: `sh -c SCRIPT` (no vty_dir, so the arguments are the script's).
    fn sh() -> Vtysh {
        Vtysh {
            vty_dir: None,
            program: PathBuf::from("/bin/sh"),
        }
    }

    #[tokio::test]
    async fn a_child_past_its_deadline_is_killed_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("pid");
        let script = format!("echo $$ > '{}'; exec sleep 30", pidfile.display());
        let t = std::time::Instant::now();
        let e = sh()
            .raw(&["-c", &script], None, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, VtyshError::Deadline(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let dead = || match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z')),
        };
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while !dead() && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(dead(), "child {pid} still runs after its deadline");
    }

    #[tokio::test]
    async fn configuration_goes_through_stdin_and_refusals_are_redacted() {
        let d = tempfile::tempdir().unwrap();
        let got = d.path().join("stdin");
        let script = format!("cat > '{}'", got.display());
        let text = "interface eth0\n ip ospf message-digest-key 1 md5 s3cret\nexit\n";
        let out = sh()
            .raw(&["-c", &script], Some(text), READ_DEADLINE)
            .await
            .unwrap();
        assert!(out.status.success());
        assert_eq!(std::fs::read_to_string(&got).unwrap(), text);
        // vtysh -f's refusal quotes the line: the key is redacted in the error.
        let refuse = "echo 'line 2: Failure to communicate[13] to ospfd, line:  ip ospf message-digest-key 1 md5 s3cret' >&2; exit 13";
        let out = sh()
            .raw(&["-c", refuse], None, READ_DEADLINE)
            .await
            .unwrap();
        let e = check(&out, false).unwrap_err().to_string();
        assert!(e.contains("md5 <redacted>") && !e.contains("s3cret"), "{e}");
        let out = sh()
            .raw(
                &[
                    "-c",
                    "echo 'Exiting: failed to connect to any daemons.'; exit 1",
                ],
                None,
                READ_DEADLINE,
            )
            .await
            .unwrap();
        assert!(matches!(
            check(&out, true),
            Err(ConcernError::Unavailable(_))
        ));
    }
}
