//! Network namespaces (`ip netns add`) owned by a test, deleted on drop.

use std::process::{Child, Command, Output, Stdio};

/// A namespace created by this test. Dropping it kills the processes this handle spawned and
/// deletes the namespace.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    children: Vec<Child>,
}

impl Netns {
    /// `ip netns add NAME; ip -n NAME link set lo up`
    pub fn new(prefix: &str) -> Netns {
        let name = crate::unique(prefix);
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns {
            name,
            children: Vec::new(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip netns exec NAME PROGRAM ARGS...` with `vr-agent`'s nothing special; returns output.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {} {program}: {e}", self.name))
    }

    /// Like [`exec`](Self::exec), panicking with stderr unless it succeeds; returns stdout.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.exec(program, args);
        assert!(
            out.status.success(),
            "in {}: {program} {args:?} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -n NAME ARGS...`, must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        run_ok(&mut cmd)
    }

    /// `sysctl -w` inside the namespace.
    pub fn sysctl(&self, key_value: &str) {
        self.exec_ok("sysctl", &["-qw", key_value]);
    }

    /// Starts a long-running process inside the namespace; it is killed when the namespace
    /// handle drops. Returns its PID.
    pub fn spawn(&mut self, program: &str, args: &[&str], stdout: Stdio, stderr: Stdio) -> u32 {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program} in {}: {e}", self.name));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// A `Command` that runs `program` inside the namespace (for callers needing pipes).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A router namespace with one NIC `lan0` (10.99.0.1/24; its veth peer `lan0p` stays in the
/// namespace): enough for pushes of routes via 10.99.0.2.
pub fn lan_router(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "lan0"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    ns.ip(&["link", "set", "lan0p", "up"]);
    ns
}

/// `ip link add A netns NS_A type veth peer name B netns NS_B`, both ends up.
pub fn veth(a: &Netns, if_a: &str, b: &Netns, if_b: &str) {
    run_ok(Command::new("ip").args([
        "link", "add", if_a, "netns", &a.name, "type", "veth", "peer", "name", if_b, "netns",
        &b.name,
    ]));
    a.ip(&["link", "set", if_a, "up"]);
    b.ip(&["link", "set", if_b, "up"]);
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
