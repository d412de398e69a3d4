//! The metadata service and the password server as guests see them: a transcript of requests
//! and answers (status and exact body bytes, escaped) for two VMs and a stranger, compared to
//! a golden file; and the plans of the web concern. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p vr-guest --test web`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use vr_guest::metadata::MetadataSection;
use vr_guest::passwords::{Acked, PasswordSection};
use vr_guest::web::{metadata_answer, password_answer, MetaTable, PasswordRequest};
use vr_guest::web_plan::{plan, Current};
use vr_secret::Secret;

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

const A: &str = "10.1.1.23";
const B: &str = "10.1.1.24";
const STRANGER: &str = "10.1.1.99";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn section() -> MetadataSection {
    let mut s = MetadataSection::default();
    let a = s.vms.entry(ip(A)).or_default();
    // "#cloud-config\nhostname: a\n" without padding, as CloudStack may send it.
    a.set_user_data(Some("I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogYQo"));
    a.set_key("service-offering", Some("Small Instance"));
    a.set_key("availability-zone", Some("zone1"));
    a.set_key("local-ipv4", Some(A));
    a.set_key("local-hostname", Some("vm-a"));
    a.set_key("instance-id", Some("i-2-23-VM"));
    a.set_key("vm-id", Some("0b5e2c5a-uuid-a"));
    a.set_key(
        "public-keys",
        Some("ssh-ed25519 AAAAC3Nz a@example\nssh-rsa AAAAB3 a2@example"),
    );
    a.set_key("cloud-identifier", None);
    let b = s.vms.entry(ip(B)).or_default();
    // CloudStack's `null` user data: an empty file.
    b.set_user_data(None);
    b.set_key("instance-id", Some("i-2-24-VM"));
    s
}

fn esc(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

#[test]
fn metadata_transcript() {
    let table = MetaTable::build(&section());
    let mut t = String::new();
    let paths = [
        "/latest/user-data",
        "/latest/user-data/",
        "/latest/USER-DATA",
        "/latest/meta-data/",
        "/latest/meta-data",
        "/latest/meta-data/instance-id",
        "/latest/meta-data/instance-id/",
        "/latest/meta-data/Instance-ID",
        "/latest/meta-data/public-keys",
        "/latest/meta-data/cloud-identifier",
        "/latest/meta-data/no-such-key",
        "/latest/meta-data/instance-id//",
        "/latest/public-keys",
        "/latest/instance-id/",
        "/latest/Local-Hostname",
        "/latest/vm-id",
        "/latest/",
        "/",
        "/metadata/10.1.1.23/instance-id",
        "/latest/../latest/user-data",
    ];
    for src in [A, B, STRANGER] {
        writeln!(t, "## from {src}").unwrap();
        for p in paths {
            let a = metadata_answer(&table, ip(src), "GET", p);
            writeln!(t, "GET {p} -> {} {}", a.status, esc(&a.body)).unwrap();
        }
    }
    let a = metadata_answer(&table, ip(A), "POST", "/latest/user-data");
    writeln!(
        t,
        "## POST from {A}\nPOST /latest/user-data -> {}",
        a.status
    )
    .unwrap();
    golden("web_metadata.txt", &t);
    // User data exactly as delivered: decoded bytes, no added newline beyond its own.
    let a = metadata_answer(&table, ip(A), "GET", "/latest/user-data");
    assert_eq!(a.body, b"#cloud-config\nhostname: a\n");
    let a = metadata_answer(&table, ip(A), "GET", "/latest/meta-data/instance-id");
    assert_eq!(a.body, b"i-2-23-VM");
}

#[test]
fn password_transcript() {
    let mut pw = PasswordSection::default();
    pw.set(ip(A), Secret::new("S3cr=t&x"));
    let mut acked = Acked::new();
    let mut t = String::new();
    let steps: &[(&str, &str, Option<&[u8]>)] = &[
        (B, "GET", Some(b"send_my_password")),
        (A, "GET", None),
        (A, "GET", Some(b"something_else")),
        (A, "GET", Some(b"send_my_password")),
        (A, "GET", Some(b" send_my_password ")),
        (B, "GET", Some(b"saved_password")),
        (A, "GET", Some(b"send_my_password")),
        (A, "POST", Some(b"save_password")),
        (A, "GET", Some(b"saved_password")),
        (A, "GET", Some(b"send_my_password")),
        (A, "GET", Some(b"saved_password")),
    ];
    for (src, method, header) in steps {
        let serve: std::collections::BTreeMap<_, _> = pw.to_serve(&acked).collect();
        let req = PasswordRequest::parse(*header);
        let (a, ack) = password_answer(serve.get(&ip(src)).copied(), ip(src), method, req);
        writeln!(
            t,
            "{src} {method} DomU_Request: {} -> {} {}{}",
            header.map(esc).unwrap_or_else(|| "(none)".into()),
            a.status,
            esc(&a.body),
            ack.map(|(i, s)| format!(" [acknowledged {i} serial {s}]"))
                .unwrap_or_default()
        )
        .unwrap();
        if let Some((i, s)) = ack {
            acked.insert(i, s);
        }
    }
    golden("web_passwords.txt", &t);
}

#[test]
fn plans() {
    let guest = vec![
        ("eth0".to_string(), ip("10.1.1.1")),
        ("eth3".to_string(), ip("10.3.0.1")),
    ];
    let md = section();
    let mut pw = PasswordSection::default();
    pw.set(ip(A), Secret::new("never-printed"));
    pw.set(ip(B), Secret::new("never-printed-either"));
    let mut acked = Acked::new();
    acked.insert(ip(B), 2);
    let mut t = String::new();
    let first = plan(&guest, &md, &pw, &acked, &Current::default());
    writeln!(t, "## from nothing ({} changes)\n{first}", first.changes()).unwrap();
    let now = Current {
        listeners: vr_guest::web_plan::listeners(&guest),
        metadata: md.clone(),
        passwords: [(ip(A), 1)].into_iter().collect(),
    };
    let same = plan(&guest, &md, &pw, &acked, &now);
    writeln!(t, "## in sync ({} changes)\n{same}", same.changes()).unwrap();
    let mut md2 = md.clone();
    md2.vms.remove(&ip(B));
    md2.vms.get_mut(&ip(A)).unwrap().set_key("vm-id", Some(""));
    acked.insert(ip(A), 1);
    let next = plan(&guest[..1], &md2, &pw, &acked, &now);
    writeln!(
        t,
        "## one network gone, B's data removed, A acknowledged ({} changes)\n{next}",
        next.changes()
    )
    .unwrap();
    assert!(!t.contains("never-printed"));
    golden("web_plans.txt", &t);
}
