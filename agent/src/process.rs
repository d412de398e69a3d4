//! Running a helper program with a deadline. Diagnostics run `swanctl`, `vtysh`, `nft`,
//! `conntrack`...; a daemon that hangs (a stopped charon keeps its socket open and never
//! answers) must not hang `show` or `tech-support` with it.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a diagnostic tool may take before it is killed.
pub const TOOL_DEADLINE: Duration = Duration::from_secs(10);

/// Runs `cmd` (stdin closed) and returns its output, killing it at `limit`: a killed run is an
/// error naming the deadline. Output is read concurrently so a chatty tool cannot block on a
/// full pipe.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        if let Some(s) = out.as_mut() {
            let _ = s.read_to_end(&mut o);
        }
        o
    });
    let err_reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        if let Some(s) = err.as_mut() {
            let _ = s.read_to_end(&mut e);
        }
        e
    });
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s (killed)", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_program_is_killed_at_the_deadline() {
        let t = Instant::now();
        let r = output_within(Command::new("sleep").arg("30"), Duration::from_millis(300));
        assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5));
        let ok = output_within(Command::new("echo").arg("hi"), Duration::from_secs(5)).unwrap();
        assert_eq!(String::from_utf8_lossy(&ok.stdout), "hi\n");
    }
}
