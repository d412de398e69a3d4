//! `vr-agent show metadata`: which VMs have user data, which metadata keys, and whether a
//! password waits for them, read from the committed state and the acknowledgement ledger
//! (so it answers without the running agent). Never a value: not the user data, not a key's
//! value, not a password.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{json, Value};

use crate::concern::web::guest_addresses;
use crate::concern::web_book::{read_ledger, LEDGER};
use crate::state::DesiredState;

pub fn view(state: &DesiredState, state_dir: &Path) -> (String, Value) {
    let acked = read_ledger(&state_dir.join(LEDGER));
    let md = &state.metadata;
    let pw = &state.passwords;
    let ips: BTreeSet<Ipv4Addr> = md.vms.keys().chain(pw.pending.keys()).copied().collect();
    let mut text = String::new();
    let listen: Vec<String> = guest_addresses(state)
        .iter()
        .map(|(dev, a)| format!("{a}:80,8080 ({dev})"))
        .collect();
    let _ = writeln!(
        text,
        "served on: {}",
        if listen.is_empty() {
            "no guest network".to_string()
        } else {
            listen.join(", ")
        }
    );
    let _ = writeln!(
        text,
        "{:<16} {:<12} {:<10} keys",
        "vm", "user-data", "password"
    );
    let mut vms = Vec::new();
    for ip in ips {
        let vm = md.vms.get(&ip);
        let user_data = match vm.and_then(|v| v.user_data.as_ref()) {
            None => "none",
            Some(u) if u.expose().is_empty() => "empty",
            Some(_) => "yes",
        };
        let password = match pw.pending.get(&ip) {
            None => "none",
            Some(p) if acked.get(&ip).is_some_and(|a| *a >= p.serial) => "fetched",
            Some(_) => "pending",
        };
        let keys: Vec<&str> = vm
            .map(|v| v.keys.iter().map(|k| k.name.as_str()).collect())
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "{:<16} {user_data:<12} {password:<10} {}",
            ip.to_string(),
            keys.join(" ")
        );
        vms.push(json!({
            "ip": ip.to_string(),
            "user_data": user_data,
            "password": password,
            "keys": keys,
        }));
    }
    (text, json!({"served_on": listen, "vms": vms}))
}
