//! `vr-agent show vpn`, text: the remote-access part (connected users; never a password).

/// Prints the `remote_access` object of `show vpn --json`.
pub(super) fn print(ra: &serde_json::Value) {
    if ra["enabled"] != true && ra["users"].as_array().is_none_or(|u| u.is_empty()) {
        return;
    }
    println!();
    match ra["server_ip"].as_str() {
        Some(ip) => println!(
            "remote access: {ip}, pool {}, gateway by {}, {} user(s) configured",
            ra["pool"].as_str().unwrap_or("-"),
            ra["gateway_auth"].as_str().unwrap_or("-"),
            ra["users"].as_array().map_or(0, |u| u.len())
        ),
        None => println!(
            "remote access: off, {} user(s) configured",
            ra["users"].as_array().map_or(0, |u| u.len())
        ),
    }
    println!(
        "{:<20} {:<16} {:<10} {:>8} {:>12} {:>12}",
        "USER", "VIRTUAL IP", "IKE", "UP (s)", "BYTES IN", "BYTES OUT"
    );
    for c in ra["connected"].as_array().into_iter().flatten() {
        println!(
            "{:<20} {:<16} {:<10} {:>8} {:>12} {:>12}",
            c["user"].as_str().unwrap_or("?"),
            c["virtual_ip"].as_str().unwrap_or("-"),
            if c["connection"] == "ra-ikev1" {
                "v1 xauth"
            } else {
                "v2 eap"
            },
            c["since_secs"]
                .as_u64()
                .map_or_else(|| "-".into(), |s| s.to_string()),
            c["bytes_in"].as_u64().unwrap_or(0),
            c["bytes_out"].as_u64().unwrap_or(0)
        );
    }
}
