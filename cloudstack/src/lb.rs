//! CloudStack `loadbalancer` into the native `lb` section. The management server renders the
//! whole haproxy configuration (`HAProxyConfigurator`) and sends it with each push: its lines
//! become the section's provided configuration (checked by `vr_lb::provided`: the agent's
//! global section replaces CloudStack's), `ssl_certs` its certificates, and `add_rules`
//! (`"ip:port:..."`) the public ports the firewall opens. A push replaces the previous one
//! whole; a push with no rule, or no configuration, removes load balancing.

use std::net::Ipv4Addr;

use vr_lb::model::{Certificate, ProvidedConfig, PublicPort};
use vr_lb::LbSection;

use super::later::{LoadBalancerRules, SslCert};
use crate::error::{FieldError, Invalid};
use crate::state::DesiredState;

/// The native section a validated `loadbalancer` push stands for.
pub fn section(p: &LoadBalancerRules) -> Result<LbSection, Invalid> {
    let mut errs = Vec::new();
    let Some((i, rule)) = p.rules.iter().enumerate().next_back() else {
        return Ok(LbSection::default());
    };
    if rule.configuration.iter().all(|l| l.trim().is_empty()) {
        return Ok(LbSection::default());
    }
    let pre = format!("rules[{i}]");
    let mut public_ports = Vec::new();
    for (j, r) in rule.add_rules.iter().enumerate() {
        let mut parts = r.split(':');
        let ip = parts.next().and_then(|s| s.trim().parse::<Ipv4Addr>().ok());
        let port = parts.next().and_then(|s| s.trim().parse::<u16>().ok());
        match (ip, port) {
            (Some(ip), Some(port)) if port != 0 => {
                let pp = PublicPort { ip, port };
                if !public_ports.contains(&pp) {
                    public_ports.push(pp);
                }
            }
            _ => errs.push(FieldError::new(
                format!("{pre}.add_rules[{j}]"),
                format!("{r:?}"),
                "not ip:port:",
            )),
        }
    }
    // `"ip:port:cidrs:,"`: the stats page, wherever CloudStack put it (the firewall opens it
    // on the control network only).
    let stats_ports = rule
        .stat_rules
        .iter()
        .filter_map(|r| {
            let mut parts = r.split(':');
            let ip = parts.next()?.trim().parse::<Ipv4Addr>().ok()?;
            let port = parts.next()?.trim().parse::<u16>().ok()?;
            Some(PublicPort { ip, port })
        })
        .collect();
    let certificates = rule
        .ssl_certs
        .iter()
        .enumerate()
        .filter_map(|(j, c)| certificate(&pre, j, c, &mut errs))
        .collect();
    let section = LbSection {
        provided: Some(ProvidedConfig {
            lines: rule.configuration.clone(),
            public_ports,
            stats_ports,
        }),
        certificates,
        ..Default::default()
    };
    for e in vr_lb::model::validate(&section) {
        let path = match e.path.strip_prefix("certificates") {
            Some(rest) => format!("{pre}.ssl_certs{rest}"),
            None => format!("{pre}.{}", e.path),
        };
        errs.push(FieldError::new(path, e.value, e.reason));
    }
    if errs.is_empty() {
        Ok(section)
    } else {
        Err(Invalid(errs))
    }
}

fn certificate(
    pre: &str,
    j: usize,
    c: &SslCert,
    errs: &mut Vec<FieldError>,
) -> Option<Certificate> {
    let path = |f: &str| format!("{pre}.ssl_certs[{j}].{f}");
    let name = c.name.clone().unwrap_or_default();
    let (Some(cert), Some(key)) = (c.cert.clone(), c.key.clone()) else {
        errs.push(FieldError::new(
            path("cert"),
            format!("{name:?}"),
            "a certificate needs its cert and key",
        ));
        return None;
    };
    if c.password.as_ref().is_some_and(|p| !p.expose().is_empty()) {
        errs.push(FieldError::new(
            path("password"),
            vr_secret::REDACTED,
            "encrypted keys are not supported (haproxy cannot ask for the password)",
        ));
        return None;
    }
    Some(Certificate {
        name,
        cert,
        key,
        chain: c.chain.clone().filter(|s| !s.trim().is_empty()),
    })
}

/// Merges a validated push: the section is replaced whole.
pub fn merge(next: &mut DesiredState, p: &LoadBalancerRules) -> Result<(), Invalid> {
    next.lb = section(p)?;
    Ok(())
}

/// A state written by an agent version that stored `loadbalancer` as pending: applied now.
/// An entry that no longer converts is left where it was.
pub fn adopt_pending(state: &mut DesiredState) {
    let Some(entries) = state.cloudstack.pending.get("loadbalancer") else {
        return;
    };
    let Some(v) = entries.get("all") else {
        return;
    };
    let Ok(p) = serde_json::from_value::<LoadBalancerRules>(v.clone()) else {
        return;
    };
    if let Ok(s) = section(&p) {
        state.lb = s;
        state.cloudstack.pending.remove("loadbalancer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(config: &str) -> String {
        format!(
            r#"{{"type":"loadbalancer","delete_from_processed_cache":false,"rules":[{{"configuration":{config},
            "tmp_cfg_file_path":"/etc/haproxy/","tmp_cfg_file_name":"haproxy.cfg.new.1",
            "add_rules":["198.51.100.1:80:"],"remove_rules":[],"stat_rules":["169.254.0.10:8081:0/0:,"],
            "router_ip":"10.1.1.1","ssl_certs":[]}}]}}"#
        )
    }

    fn merged(text: &str) -> Result<DesiredState, Invalid> {
        let p = crate::parse_payload(text)?;
        crate::merge(&DesiredState::default(), &p, &Default::default()).map(|m| {
            assert!(m.not_yet_applied.is_empty(), "{:?}", m.not_yet_applied);
            m.state
        })
    }

    #[test]
    fn real_lines_are_the_configuration() {
        let lines = r#"["global","\tuser haproxy","\tdaemon","\t ","defaults","\tmode    tcp","\t ",
            "listen 198_51_100_1-80","\tbind 198.51.100.1:80","\tbalance roundrobin",
            "\tacl network_allowed src 198.51.100.0/24 \n\ttcp-request connection reject if !network_allowed",
            "\tserver 198_51_100_1-80_0 10.1.1.11:8080 check","\t "]"#;
        let s = merged(&push(lines)).unwrap();
        let p = s.lb.provided.as_ref().unwrap();
        assert_eq!(p.lines.len(), 13);
        assert_eq!(p.stats_ports[0].port, 8081);
        assert_eq!(
            p.public_ports,
            [PublicPort {
                ip: "198.51.100.1".parse().unwrap(),
                port: 80
            }]
        );
    }

    #[test]
    fn moving_haproxy_is_refused_naming_the_line() {
        let lines = r#"["global","\tuser root","listen a","\tbind 198.51.100.1:80"]"#;
        let e = merged(&push(lines)).unwrap_err();
        assert_eq!(e.0[0].path, "rules[0].configuration[1]");
        assert!(e.0[0].value.contains("user root"));
        let e = merged(&push(r#"["listen a","\tbind 1.1.1.1:80\u0000"]"#)).unwrap_err();
        assert_eq!(e.0[0].path, "rules[0].configuration[1]");
    }

    #[test]
    fn no_rule_removes() {
        let s = merged(&push("[]")).unwrap();
        assert!(s.lb.is_empty());
    }
}
