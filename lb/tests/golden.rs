//! Golden files of every rendered haproxy feature: TCP round robin, HTTP leastconn with an
//! HTTP health check and lb-cookie stickiness, source balancing with source stickiness and a
//! source allow list, app-cookie stickiness, TLS offload, the stats page, and CloudStack's
//! pre-rendered lines merged under the agent's global section. Each config (but the TLS one,
//! whose certificate file does not exist here) is also checked by `haproxy -c` when haproxy
//! is installed. Regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-lb --test golden`.

use std::path::{Path, PathBuf};

use vr_lb::render::{render, Paths, RunAs};
use vr_lb::LbSection;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

/// `haproxy -c` on the rendered text, when haproxy is there.
fn haproxy_accepts(name: &str, config: &str) {
    if !Path::new("/usr/sbin/haproxy").exists() {
        eprintln!("{name}: haproxy not installed, config not checked by haproxy -c");
        return;
    }
    let dir = tempfile_dir(name);
    let f = dir.join("haproxy.cfg");
    std::fs::write(&f, config).unwrap();
    let out = std::process::Command::new("/usr/sbin/haproxy")
        .args(["-c", "-q", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{name}: haproxy -c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tempfile_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vr-lb-golden-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn case(name: &str, json: &str, check: bool) {
    let s: LbSection = serde_json::from_str(json).unwrap();
    let problems = vr_lb::model::validate(&s);
    assert!(problems.is_empty(), "{name}: {problems:?}");
    let r = render(&s, &Paths::new(Path::new("/run/vr-agent")), None);
    golden(&format!("{name}.cfg"), &r.config);
    if check {
        haproxy_accepts(name, &r.config);
    }
}

#[test]
fn tcp_roundrobin() {
    case(
        "tcp_roundrobin",
        r#"{"listeners":[{"public_ip":"198.51.100.1","public_port":7000,
            "backends":[{"ip":"10.1.1.11","port":7000},{"ip":"10.1.1.12","port":7000}]}]}"#,
        true,
    );
}

#[test]
fn http_leastconn_health_lb_cookie() {
    case(
        "http_leastconn_cookie",
        r#"{"listeners":[{"public_ip":"198.51.100.1","public_port":80,"protocol":"http","algorithm":"leastconn",
            "stickiness":{"method":"lb_cookie","cookie_name":"SRV","domain":".example.org"},
            "health_check":{"http_path":"/health","interval_ms":250,"timeout_ms":500,"unhealthy_threshold":2,"healthy_threshold":2},
            "backends":[{"ip":"10.1.1.11","port":8080},{"ip":"10.1.1.12","port":8080}]}]}"#,
        true,
    );
}

#[test]
fn source_stickiness_and_allow_list() {
    case(
        "source_allow_list",
        r#"{"listeners":[{"public_ip":"198.51.100.1","public_port":7001,"algorithm":"source",
            "stickiness":{"method":"source","table_size":"100k","expire":"10m"},
            "source_cidrs":["198.51.100.0/28","203.0.113.7/32"],
            "backends":[{"ip":"10.1.1.11","port":7000},{"ip":"10.1.1.12","port":7000}]}]}"#,
        true,
    );
}

#[test]
fn app_cookie() {
    case(
        "app_cookie",
        r#"{"listeners":[{"public_ip":"198.51.100.1","public_port":8080,"protocol":"http",
            "stickiness":{"method":"app_cookie","cookie_name":"JSESSIONID","length":64,"holdtime":"1h","request_learn":true},
            "backends":[{"ip":"10.1.1.11","port":8080}]}]}"#,
        true,
    );
}

#[test]
fn tls_offload_and_stats_page() {
    case(
        "tls_offload",
        r#"{"listeners":[{"public_ip":"198.51.100.1","public_port":443,"protocol":"http","ssl":"web",
            "backends":[{"ip":"10.1.1.11","port":8080}]}],
            "certificates":[{"name":"web","cert":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","key":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}],
            "stats":{"ip":"169.254.0.10","port":8081}}"#,
        false,
    );
}

#[test]
fn stats_page_runs_as_haproxy() {
    let s: LbSection =
        serde_json::from_str(r#"{"stats":{"ip":"169.254.0.10","uri":"/lb-stats"}}"#).unwrap();
    let run_as = RunAs {
        user: "haproxy".into(),
        group: "haproxy".into(),
        chroot: "/var/lib/haproxy".into(),
    };
    let r = render(&s, &Paths::new(Path::new("/run/vr-agent")), Some(&run_as));
    golden("stats_page.cfg", &r.config);
    haproxy_accepts("stats_page", &r.config);
}

/// A real CloudStack payload's lines (HAProxyConfigurator's output: tab-led lines, `"\t "`
/// blank lines, multi-line entries).
pub const CLOUDSTACK_LINES: &str = include_str!("cloudstack_lines.json");

#[test]
fn cloudstack_lines() {
    let lines: Vec<String> = serde_json::from_str(CLOUDSTACK_LINES).unwrap();
    let s = LbSection {
        provided: Some(vr_lb::model::ProvidedConfig {
            lines,
            ..Default::default()
        }),
        ..Default::default()
    };
    let problems = vr_lb::model::validate(&s);
    assert!(problems.is_empty(), "{problems:?}");
    let r = render(&s, &Paths::new(Path::new("/run/vr-agent")), None);
    golden("cloudstack.cfg", &r.config);
    haproxy_accepts("cloudstack", &r.config);
}
