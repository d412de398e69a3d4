//! `checkrouter.sh` (contract §3): the router's redundancy role, printed as `Status: <ROLE>`.
//! The management server matches with `startsWith` on the whole output, so this line is all
//! the script prints.

use std::collections::BTreeMap;

/// What `CheckRouterAnswer` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Backup,
    Fault,
    Unknown,
}

/// The router's role. The single source of it: the VRRP work replaces this function with the
/// redundant-router state. Until then a single router is PRIMARY; one the boot cmdline calls
/// redundant (`redundant_router=1|true`) is FAULT, which is what upstream reports while
/// keepalived is not running (and here it never is).
pub fn role(cmdline: &BTreeMap<String, String>) -> Role {
    match cmdline.get("redundant_router").map(|v| v.trim()) {
        Some("1") | Some("true") => Role::Fault,
        _ => Role::Primary,
    }
}

/// The exact output: one line.
pub fn status_line(role: Role) -> String {
    let r = match role {
        Role::Primary => "PRIMARY",
        Role::Backup => "BACKUP",
        Role::Fault => "FAULT",
        Role::Unknown => "UNKNOWN",
    };
    format!("Status: {r}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_router_is_primary() {
        let mut m = BTreeMap::new();
        assert_eq!(status_line(role(&m)), "Status: PRIMARY\n");
        m.insert("redundant_router".into(), "false".into());
        assert_eq!(role(&m), Role::Primary);
        m.insert("redundant_router".into(), "1".into());
        assert_eq!(status_line(role(&m)), "Status: FAULT\n");
    }
}
