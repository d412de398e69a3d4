//! A guest VM's side of the router's guest services, with the clients real guests use:
//! busybox `udhcpc` for a lease, `dig` against the router's DNS, `curl` for metadata and user
//! data (cloud-init), `wget` with the `DomU_Request` header for the password server
//! (CloudStack's `cloud-set-guest-password`). Every call has a deadline.

use std::path::Path;

use crate::Netns;

/// The `udhcpc` script: applies the lease to the interface (address, default route) and
/// writes what it got to `$GDIR/lease` (`ip=... router=... dns=... domain=...`).
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$1" in
  deconfig) ip link set "$interface" up; ip -4 addr flush dev "$interface" ;;
  bound|renew)
    ip -4 addr replace "$ip/${mask:-24}" dev "$interface"
    [ -n "${router:-}" ] && ip -4 route replace default via "${router%% *}" dev "$interface"
    echo "ip=$ip router=${router:-} dns=${dns:-} domain=${domain:-}" > "$GDIR/lease"
    ;;
esac
"#;

/// One DHCP exchange with busybox `udhcpc` in `ns` on `eth0` (`-q`: exit once bound, `-n`:
/// exit if no lease within 5 tries of 1 s). `dir` holds the script and the lease summary.
/// Returns the lease summary line, or why there is none.
pub fn udhcpc_once(ns: &Netns, dir: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("udhcpc.script");
    std::fs::write(&script, UDHCPC_SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let out = ns.exec(
        "env",
        &[
            &format!("GDIR={}", dir.display()),
            "timeout",
            "15",
            "busybox",
            "udhcpc",
            "-f",
            "-q",
            "-n",
            "-i",
            "eth0",
            "-s",
            script.to_str().unwrap_or_default(),
            "-t",
            "5",
            "-T",
            "1",
        ],
    );
    let lease = std::fs::read_to_string(dir.join("lease")).unwrap_or_default();
    if out.status.success() && !lease.is_empty() {
        Ok(lease.trim().to_string())
    } else {
        Err(format!(
            "udhcpc exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `dig +short @server NAME A` from `ns`: the first address answered (empty: none).
pub fn dig_a(ns: &Netns, server: &str, name: &str) -> String {
    let out = ns.exec(
        "dig",
        &[
            "+short",
            "+time=1",
            "+tries=3",
            &format!("@{server}"),
            name,
            "A",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.parse::<std::net::Ipv4Addr>().is_ok())
        .unwrap_or("")
        .to_string()
}

/// `curl` from `ns` with a 5 s deadline and extra arguments before the URL: (status, body).
pub fn curl(ns: &Netns, extra: &[&str], url: &str) -> (u16, String) {
    let mut args = vec!["-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = ns.exec("curl", &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// CloudStack's `cloud-set-guest-password` request: `wget -q -t 3 -T 20 -O - --header
/// "DomU_Request: REQUEST" http://SERVER:8080`, carriage returns stripped as the script does.
/// `None` if wget failed.
pub fn password_request(ns: &Netns, server: &str, request: &str) -> Option<String> {
    let out = ns.exec(
        "wget",
        &[
            "-q",
            "-t",
            "3",
            "-T",
            "20",
            "-O",
            "-",
            "--header",
            &format!("DomU_Request: {request}"),
            &format!("http://{server}:8080"),
        ],
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).replace('\r', ""))
}
