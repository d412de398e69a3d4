//! `ping`, `traceroute`, `arping`: the system tools, run without a shell, with every argument
//! validated first (as CloudStack's run-diagnostics does). A destination is an IP address, never
//! a name or anything that could be read as an option.

use std::net::IpAddr;
use std::process::Command;

use crate::validate::is_valid_ifname;

/// Why a diagnostics request was refused (nothing was run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// destination {0:?} is not an IP address
    #[error("destination {0:?} is not an IP address")]
    Destination(String),
    /// count {0} out of range 1-{1}
    #[error("count {0} out of range 1-{1}")]
    Count(u32, u32),
    /// interface {0:?} is not a valid interface name
    #[error("interface {0:?} is not a valid interface name")]
    Interface(String),
    /// {0} is not installed
    #[error("{0} is not installed")]
    Missing(&'static str),
}

pub const MAX_PING_COUNT: u32 = 100;
pub const MAX_HOPS: u32 = 64;

/// A validated invocation: program and argument list (no shell involved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: &'static str,
    pub args: Vec<String>,
}

impl Invocation {
    pub fn command(&self) -> Command {
        let mut c = Command::new(self.program);
        c.args(&self.args);
        c
    }

    /// `--json`: runs the tool with its output captured and answers one JSON object: the
    /// tool, the target (the validated destination, its last argument), the exit status
    /// (`null` when it could not run or was killed) and the output lines.
    pub fn run_json(&self) -> serde_json::Value {
        let target = self.args.last().cloned().unwrap_or_default();
        let lines = |b: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect()
        };
        match self.command().stdin(std::process::Stdio::null()).output() {
            Ok(o) => serde_json::json!({
                "tool": self.program,
                "target": target,
                "ok": o.status.success(),
                "exit_status": o.status.code(),
                "output": lines(&o.stdout),
                "stderr": lines(&o.stderr),
            }),
            Err(e) => serde_json::json!({
                "tool": self.program,
                "target": target,
                "ok": false,
                "exit_status": null,
                "error": format!("cannot run {}: {e}", self.program),
            }),
        }
    }
}

/// `--json` answer of a refused request: nothing was run.
pub fn refused_json(tool: &str, e: &ToolError) -> serde_json::Value {
    serde_json::json!({"tool": tool, "ok": false, "exit_status": null, "refused": e.to_string()})
}

fn destination(s: &str) -> Result<IpAddr, ToolError> {
    if s.len() > 64 {
        return Err(ToolError::Destination(format!(
            "{}...",
            &s[..s.char_indices().nth(32).map_or(s.len(), |(i, _)| i)]
        )));
    }
    s.parse().map_err(|_| ToolError::Destination(s.to_string()))
}

fn interface(s: Option<&str>) -> Result<Option<String>, ToolError> {
    match s {
        None => Ok(None),
        Some(i) if is_valid_ifname(i) => Ok(Some(i.to_string())),
        Some(i) => Err(ToolError::Interface(i.chars().take(32).collect())),
    }
}

fn count(n: u32, max: u32) -> Result<u32, ToolError> {
    if (1..=max).contains(&n) {
        Ok(n)
    } else {
        Err(ToolError::Count(n, max))
    }
}

/// `ping -c COUNT -W 2 [-I IFACE] -- DEST`
pub fn ping(dest: &str, n: u32, iface: Option<&str>) -> Result<Invocation, ToolError> {
    let dest = destination(dest)?;
    let n = count(n, MAX_PING_COUNT)?;
    let mut args = vec![
        "-n".into(),
        "-c".into(),
        n.to_string(),
        "-W".into(),
        "2".into(),
    ];
    if let Some(i) = interface(iface)? {
        args.extend(["-I".into(), i]);
    }
    args.extend(["--".into(), dest.to_string()]);
    Ok(Invocation {
        program: "ping",
        args,
    })
}

/// `traceroute -n -w 2 -m HOPS [-i IFACE] DEST`
pub fn traceroute(dest: &str, hops: u32, iface: Option<&str>) -> Result<Invocation, ToolError> {
    let dest = destination(dest)?;
    let hops = count(hops, MAX_HOPS)?;
    let mut args = vec![
        "-n".into(),
        "-w".into(),
        "2".into(),
        "-m".into(),
        hops.to_string(),
    ];
    if let Some(i) = interface(iface)? {
        args.extend(["-i".into(), i]);
    }
    args.push(dest.to_string());
    Ok(Invocation {
        program: "traceroute",
        args,
    })
}

/// `arping -c COUNT -w DEADLINE -I IFACE DEST` (IPv4 only; the interface is required).
pub fn arping(dest: &str, n: u32, iface: &str) -> Result<Invocation, ToolError> {
    let dest = match destination(dest)? {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => return Err(ToolError::Destination(dest.to_string())),
    };
    let n = count(n, MAX_PING_COUNT)?;
    let iface = interface(Some(iface))?.unwrap_or_default();
    Ok(Invocation {
        program: "arping",
        args: vec![
            "-c".into(),
            n.to_string(),
            "-w".into(),
            (n + 2).to_string(),
            "-I".into(),
            iface,
            dest.to_string(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_arguments_are_refused() {
        let long = "1".repeat(10_000);
        for bad in [
            "; rm -rf /",
            "--help",
            "-c",
            "10.0.0.1; reboot",
            "$(id)",
            "example.com",
            long.as_str(),
            "",
        ] {
            assert!(ping(bad, 3, None).is_err(), "{bad:?}");
            assert!(traceroute(bad, 10, None).is_err(), "{bad:?}");
            assert!(arping(bad, 3, "eth0").is_err(), "{bad:?}");
        }
        assert!(matches!(
            ping("10.0.0.1", 0, None),
            Err(ToolError::Count(0, _))
        ));
        assert!(matches!(
            ping("10.0.0.1", 101, None),
            Err(ToolError::Count(..))
        ));
        assert!(matches!(
            ping("10.0.0.1", 3, Some("eth0;ls")),
            Err(ToolError::Interface(_))
        ));
        assert!(matches!(
            arping("::1", 3, "eth0"),
            Err(ToolError::Destination(_))
        ));
    }

    #[test]
    fn json_answer_has_tool_target_status_and_lines() {
        // `echo` stands in for the tools (the real ones run in tests/diag_basic.rs): the shape
        // of the answer is what is tested here.
        let inv = Invocation {
            program: "echo",
            args: vec!["line one\nline two".into(), "192.0.2.1".into()],
        };
        let v = inv.run_json();
        assert_eq!(v["tool"], "echo");
        assert_eq!(v["target"], "192.0.2.1");
        assert_eq!(v["exit_status"], 0);
        assert_eq!(v["ok"], true);
        assert_eq!(
            v["output"],
            serde_json::json!(["line one", "line two 192.0.2.1"])
        );
        let missing = Invocation {
            program: "vr-agent-no-such-tool",
            args: vec!["192.0.2.1".into()],
        };
        let v = missing.run_json();
        assert_eq!(v["ok"], false);
        assert!(v["exit_status"].is_null());
        let v = refused_json("ping", &ping("$(id)", 3, None).unwrap_err());
        assert!(v["refused"].as_str().unwrap().contains("not an IP address"));
    }

    #[test]
    fn valid_arguments_become_a_plain_argument_list() {
        let inv = ping("192.0.2.1", 3, Some("eth2")).unwrap();
        assert_eq!(inv.program, "ping");
        assert_eq!(
            inv.args,
            ["-n", "-c", "3", "-W", "2", "-I", "eth2", "--", "192.0.2.1"]
        );
        let inv = arping("192.0.2.1", 2, "eth2").unwrap();
        assert_eq!(inv.args, ["-c", "2", "-w", "4", "-I", "eth2", "192.0.2.1"]);
        assert_eq!(
            traceroute("2001:db8::1", 5, None)
                .unwrap()
                .args
                .last()
                .unwrap(),
            "2001:db8::1"
        );
    }
}
