//! The metadata service and the password server as pure request -> answer functions
//! (sans-IO): the agent's HTTP edge (`agent/src/concern/web_http.rs`) hands them the
//! connection's source address and the request line, and sends back what they return.
//!
//! Metadata paths follow the rewrite rules of CloudStack's `/var/www/html/latest/.htaccess`
//! (contract section 17.3), always resolved to the directory of the **client's own address**:
//! `user-data/?`, `meta-data/?` (the key listing), `meta-data/<key>/?`, and the legacy
//! `<key>/?` forms; the fixed names match case-insensitively (`[NC]`), key names as stored.
//! Anything else, and any address without data, is 404.
//!
//! The password server follows section 16: the `DomU_Request` header decides, the answer is
//! always 200 with a body without newline.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::metadata::{decode_user_data, MetadataSection};
use crate::passwords::PendingPassword;

/// Port of the metadata and user-data service.
pub const METADATA_PORT: u16 = 80;
/// Port of the password server.
pub const PASSWORD_PORT: u16 = 8080;

/// An answer: status and body (the edge adds `Content-Type: text/plain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    fn ok(body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status: 200,
            body: body.into(),
        }
    }
    fn not_found() -> Answer {
        Answer {
            status: 404,
            body: b"Not Found\n".to_vec(),
        }
    }
}

/// What one VM is served, ready to answer (user data decoded once, listing rendered once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedVm {
    pub user_data: Option<Vec<u8>>,
    /// `meta-data/`: one key per line.
    pub listing: Option<String>,
    pub keys: Vec<(String, String)>,
}

/// Everything the metadata service answers, by client address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaTable {
    pub vms: HashMap<Ipv4Addr, ServedVm>,
}

impl MetaTable {
    /// `section` must have passed [`crate::metadata::validate`] (user data that does not
    /// decode is served as absent).
    pub fn build(section: &MetadataSection) -> MetaTable {
        let vms = section
            .vms
            .iter()
            .map(|(ip, vm)| {
                let user_data = vm
                    .user_data
                    .as_ref()
                    .and_then(|u| decode_user_data(u.expose()).ok());
                let listing = (!vm.keys.is_empty()).then(|| {
                    vm.keys
                        .iter()
                        .map(|k| format!("{}\n", k.name))
                        .collect::<String>()
                });
                let keys = vm
                    .keys
                    .iter()
                    .map(|k| (k.name.clone(), k.value.clone()))
                    .collect();
                (
                    *ip,
                    ServedVm {
                        user_data,
                        listing,
                        keys,
                    },
                )
            })
            .collect();
        MetaTable { vms }
    }
}

/// One request to the metadata service (`path` without the query string).
pub fn metadata_answer(table: &MetaTable, src: Ipv4Addr, method: &str, path: &str) -> Answer {
    if method != "GET" && method != "HEAD" {
        return Answer {
            status: 405,
            body: b"Method Not Allowed\n".to_vec(),
        };
    }
    let Some(vm) = table.vms.get(&src) else {
        return Answer::not_found();
    };
    let Some(rest) = strip_prefix_nc(path, "/latest/") else {
        return Answer::not_found();
    };
    let one_slash = |s: &str| s.strip_suffix('/').unwrap_or(s).to_string();
    // `^user-data/?$`
    if rest.eq_ignore_ascii_case("user-data") || rest.eq_ignore_ascii_case("user-data/") {
        return vm
            .user_data
            .clone()
            .map_or_else(Answer::not_found, Answer::ok);
    }
    // `^meta-data/?$`
    if rest.eq_ignore_ascii_case("meta-data") || rest.eq_ignore_ascii_case("meta-data/") {
        return vm
            .listing
            .clone()
            .map_or_else(Answer::not_found, Answer::ok);
    }
    // `^meta-data/(.+[^/])/?$`: the key as written (a file name on CloudStack's router).
    if let Some(key) = strip_prefix_nc(rest, "meta-data/") {
        let key = one_slash(key);
        return match vm.keys.iter().find(|(k, _)| *k == key) {
            Some((_, v)) if !key.is_empty() && !key.ends_with('/') => Answer::ok(v.as_bytes()),
            _ => Answer::not_found(),
        };
    }
    // Legacy `^<key>/?$` (`/latest/public-keys`, `/latest/instance-id`, ...): one rule per
    // key name, `[NC]`.
    let key = one_slash(rest);
    match vm
        .keys
        .iter()
        .find(|(k, _)| !key.contains('/') && k.eq_ignore_ascii_case(&key))
    {
        Some((_, v)) => Answer::ok(v.as_bytes()),
        None => Answer::not_found(),
    }
}

fn strip_prefix_nc<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// What a `DomU_Request` header asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRequest {
    /// `send_my_password`
    Send,
    /// `saved_password`: the guest has set it; forget it.
    Saved,
    /// No header, or another value.
    Bad,
}

impl PasswordRequest {
    pub fn parse(header: Option<&[u8]>) -> PasswordRequest {
        match header.map(|h| h.trim_ascii()) {
            Some(b"send_my_password") => PasswordRequest::Send,
            Some(b"saved_password") => PasswordRequest::Saved,
            _ => PasswordRequest::Bad,
        }
    }
}

/// The answer of the password server to `src`, and the acknowledgement to record (the
/// address and the serial of the password it forgets), if any. `POST` is CloudStack's own
/// save request, only ever honoured from the router itself: a guest gets the same empty 200.
pub fn password_answer(
    pending: Option<&PendingPassword>,
    src: Ipv4Addr,
    method: &str,
    req: PasswordRequest,
) -> (Answer, Option<(Ipv4Addr, u64)>) {
    if method == "POST" {
        return (Answer::ok(Vec::new()), None);
    }
    match req {
        PasswordRequest::Send => match pending {
            Some(p) => (Answer::ok(p.password.expose().as_bytes()), None),
            None => (Answer::ok("saved_password"), None),
        },
        PasswordRequest::Saved => (
            Answer::ok("saved_password"),
            pending.map(|p| (src, p.serial)),
        ),
        PasswordRequest::Bad => (Answer::ok("bad_request"), None),
    }
}
