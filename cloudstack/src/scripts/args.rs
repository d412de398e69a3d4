//! Argument parsing of the apply-side scripts. The management side pastes one string into the
//! remote command line, so the arguments arrive already split by the VR's login shell.

use std::net::Ipv4Addr;

/// `update_config.py <file> [false]` (contract §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateConfig {
    /// A bare file name inside the CloudStack directory, e.g. `ip_associations.json.<uuid>`.
    pub file: String,
    /// `false` (`deleteFromProcessedCache`): the processed file is deleted instead of kept
    /// gzipped in `processed/`.
    pub keep: bool,
}

/// Why a script's arguments were refused (the script exits 1, as upstream does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// usage: {0}
    #[error("usage: {0}")]
    Usage(&'static str),
    /// {what} {value:?}: {why}
    #[error("{what} {value:?}: {why}")]
    Bad {
        what: &'static str,
        value: String,
        why: &'static str,
    },
}

fn bad(what: &'static str, value: &str, why: &'static str) -> ArgsError {
    ArgsError::Bad {
        what,
        value: value.to_string(),
        why,
    }
}

/// A file name CloudStack copied into its directory: one path component, no `..`. Upstream
/// also accepts an absolute path in that directory (what `vr_cfg.sh` passes); its base name is
/// what counts.
pub fn file_name<'a>(what: &'static str, v: &'a str, dir: &str) -> Result<&'a str, ArgsError> {
    let dir = dir.trim_end_matches('/');
    let name = match v.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) {
        Some(rest) => rest,
        None if v.starts_with('/') => return Err(bad(what, v, "not in the CloudStack directory")),
        None => v,
    };
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.starts_with('.')
        && name.chars().all(|c| !c.is_control());
    if ok {
        Ok(name)
    } else {
        Err(bad(what, v, "not a file name"))
    }
}

/// `update_config.py` takes 1 or 2 arguments; the second is `false` to delete the processed
/// file (upstream treats any other value as keep).
pub fn update_config(args: &[String], dir: &str) -> Result<UpdateConfig, ArgsError> {
    const USAGE: &str = "update_config.py <file> [false]";
    match args {
        [f] | [f, _] => Ok(UpdateConfig {
            file: file_name("file", f, dir)?.to_string(),
            keep: args.get(1).map(|k| k != "false").unwrap_or(true),
        }),
        _ => Err(ArgsError::Usage(USAGE)),
    }
}

/// `vr_cfg.sh -c <cfg>` (contract §2); returns the container's file name.
pub fn vr_cfg(args: &[String], dir: &str) -> Result<String, ArgsError> {
    const USAGE: &str = "vr_cfg.sh -c <file>";
    match args {
        [c, f] if c == "-c" => Ok(file_name("file", f, dir)?.to_string()),
        [c] if c.starts_with("-c") && c.len() > 2 => {
            Ok(file_name("file", &c[2..], dir)?.to_string())
        }
        _ => Err(ArgsError::Usage(USAGE)),
    }
}

/// `update_interface_config.sh <ip> <prefixlen> <mtu> <tries>` (contract §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceMtu {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
}

pub fn update_interface_config(args: &[String]) -> Result<InterfaceMtu, ArgsError> {
    const USAGE: &str = "update_interface_config.sh <ip> <prefixlen> <mtu> [tries]";
    let (ip, prefix, mtu) = match args {
        [ip, p, m] | [ip, p, m, _] => (ip, p, m),
        _ => return Err(ArgsError::Usage(USAGE)),
    };
    let address = ip
        .parse::<Ipv4Addr>()
        .map_err(|_| bad("ip", ip, "not an IPv4 address"))?;
    let prefix = prefix
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| bad("prefixlen", prefix, "not a prefix length 0-32"))?;
    let mtu = mtu
        .parse::<u32>()
        .ok()
        .filter(|m| (68..=65535).contains(m))
        .ok_or_else(|| bad("mtu", mtu, "MTU out of range 68-65535"))?;
    Ok(InterfaceMtu {
        address,
        prefix,
        mtu,
    })
}

/// What `manage_service.sh <action> <service>` (contract §12) is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    Start,
    Stop,
    Restart,
    Status,
}

/// Only keepalived is managed (the management server sends `start|stop keepalived`).
pub fn manage_service(args: &[String]) -> Result<ServiceAction, ArgsError> {
    const USAGE: &str = "manage_service.sh <start|stop|restart|status> keepalived";
    let [action, service] = args else {
        return Err(ArgsError::Usage(USAGE));
    };
    if service != "keepalived" {
        return Err(bad(
            "service",
            service,
            "not managed here (only keepalived is)",
        ));
    }
    match action.as_str() {
        "start" => Ok(ServiceAction::Start),
        "stop" => Ok(ServiceAction::Stop),
        "restart" => Ok(ServiceAction::Restart),
        "status" => Ok(ServiceAction::Status),
        _ => Err(bad(
            "action",
            action,
            "expected start, stop, restart or status",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn update_config_arguments() {
        let d = "/var/cache/cloud";
        assert_eq!(
            update_config(&v(&["ips.json.1"]), d).unwrap(),
            UpdateConfig {
                file: "ips.json.1".into(),
                keep: true
            }
        );
        assert!(!update_config(&v(&["m.json.2", "false"]), d).unwrap().keep);
        assert!(update_config(&v(&["m.json.2", "true"]), d).unwrap().keep);
        assert_eq!(
            update_config(&v(&["/var/cache/cloud/a.json"]), d)
                .unwrap()
                .file,
            "a.json"
        );
        assert!(update_config(&v(&[]), d).is_err());
        assert!(update_config(&v(&["a", "b", "c"]), d).is_err());
        for f in ["../etc/passwd", "/etc/passwd", "a/b", "..", ".hidden"] {
            assert!(update_config(&v(&[f]), d).is_err(), "{f}");
        }
    }

    #[test]
    fn vr_cfg_arguments() {
        let d = "/var/cache/cloud/";
        assert_eq!(
            vr_cfg(&v(&["-c", "/var/cache/cloud/VR-1.cfg"]), d).unwrap(),
            "VR-1.cfg"
        );
        assert_eq!(vr_cfg(&v(&["-cVR-1.cfg"]), d).unwrap(), "VR-1.cfg");
        assert!(vr_cfg(&v(&["VR-1.cfg"]), d).is_err());
        assert!(vr_cfg(&v(&["-c", "/tmp/VR-1.cfg"]), d).is_err());
    }

    #[test]
    fn interface_and_service_arguments() {
        let m = update_interface_config(&v(&["192.0.2.10", "24", "1450", "15"])).unwrap();
        assert_eq!((m.prefix, m.mtu), (24, 1450));
        assert!(update_interface_config(&v(&["192.0.2.10", "33", "1450", "15"])).is_err());
        assert!(update_interface_config(&v(&["192.0.2.10", "24", "40", "15"])).is_err());
        assert!(update_interface_config(&v(&["x", "24", "1450"])).is_err());
        assert_eq!(
            manage_service(&v(&["start", "keepalived"])).unwrap(),
            ServiceAction::Start
        );
        assert!(manage_service(&v(&["start", "ssh"])).is_err());
        assert!(manage_service(&v(&["enable", "keepalived"])).is_err());
    }
}
