//! Real traffic between namespaces: a TCP server that answers each connection with the
//! address it saw the client come from, and a client that reports what it got.

use std::process::Stdio;
use std::time::Duration;

use crate::{wait_for, Netns};

const SERVER: &str = r#"
import socket, sys, threading
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2]))); ls.listen(64)
def handle(c, a):
    with c:
        c.sendall(("peer=%s local=%s:%d\n" % ((a[0],) + c.getsockname())).encode())
        while True:
            d = c.recv(4096)
            if not d: return
            c.sendall(d)
while True:
    c, a = ls.accept(); threading.Thread(target=handle, args=(c, a), daemon=True).start()
"#;

const CLIENT: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    f = s.makefile()
    print(f.readline().strip())
except Exception as e:
    print("ERROR %s" % type(e).__name__); sys.exit(1)
"#;

/// Starts a TCP server on `addr:port` in `ns`; each connection is answered with
/// `peer=<client ip> local=<ip>:<port>` and then echoed. Returns once it listens.
pub fn tcp_server(ns: &mut Netns, addr: &str, port: u16) {
    let port_s = port.to_string();
    ns.spawn(
        "python3",
        &["-c", SERVER, addr, &port_s],
        Stdio::null(),
        Stdio::null(),
    );
    let needle = format!("{addr}:{port}");
    let ok = wait_for(Duration::from_secs(5), || {
        ns.exec_ok("ss", &["-ltnH"]).contains(&needle)
    });
    assert!(ok, "server on {needle} in {} did not listen", ns.name);
}

/// Connects from `ns` to `addr:port`; `Ok(greeting)` or `Err(what failed)`.
pub fn tcp_probe(ns: &Netns, addr: &str, port: u16, timeout: Duration) -> Result<String, String> {
    let out = ns.exec(
        "python3",
        &[
            "-c",
            CLIENT,
            addr,
            &port.to_string(),
            &format!("{}", timeout.as_secs_f32()),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// `ping -c COUNT -W 1 DEST` from `ns`: true if any reply came.
pub fn ping(ns: &Netns, dest: &str, count: u32) -> bool {
    ns.exec(
        "ping",
        &["-c", &count.to_string(), "-i", "0.2", "-W", "1", dest],
    )
    .status
    .success()
}
