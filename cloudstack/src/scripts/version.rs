//! `get_template_version.sh` (contract §4): `Cloudstack Release <x.y.z> <date>&<signature>`.
//!
//! The Java splits the whole output on `&` and wants exactly two parts; the management server
//! then takes the third space-separated word of the first as the router's version
//! (`CloudStackVersion.trimRouterVersion`) and refuses every command to a router older than
//! its minimum. So: one `&`, no other output, and a version it accepts.

/// The date upstream's release line carries (the template's build date); this agent's line
/// reports the release of the CloudStack it stands in for, with that release's date.
pub const RELEASE_DATE: &str = "Thu Oct 30 10:00:00 UTC 2025";

/// `(\d+\.){2}(\d+\.)?\d+(-[a-zA-Z]+)?(-\d+)?(-SNAPSHOT)?`, the pattern `trimRouterVersion`
/// matches (anything else reads as version "0", older than every minimum).
pub fn is_router_version(v: &str) -> bool {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    let (mut rest, mut dots) = (v, 0);
    loop {
        let n = digits(rest);
        if n == 0 {
            return false;
        }
        rest = &rest[n..];
        match rest.strip_prefix('.') {
            Some(r) if dots < 3 => {
                dots += 1;
                rest = r;
            }
            _ => break,
        }
    }
    if !(2..=3).contains(&dots) {
        return false;
    }
    if let Some(r) = rest.strip_prefix("-SNAPSHOT") {
        return r.is_empty();
    }
    if let Some(r) = rest.strip_prefix('-') {
        let alpha = r.bytes().take_while(u8::is_ascii_alphabetic).count();
        rest = if alpha > 0 { &r[alpha..] } else { rest };
    }
    if let Some(r) = rest.strip_prefix('-') {
        let n = digits(r);
        if n > 0 {
            rest = &r[n..];
        }
    }
    rest.is_empty() || rest == "-SNAPSHOT"
}

/// The line, with the newline upstream's `echo` ends it with. `signature` is hex.
pub fn template_version_line(version: &str, signature: &str) -> String {
    format!("Cloudstack Release {version} {RELEASE_DATE}&{signature}\n")
}

/// Lower-case hex of `bytes` (the signature is a sha512 digest).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_the_management_server_accepts() {
        for v in [
            "4.22.0",
            "4.22.0.1",
            "4.20.1-SNAPSHOT",
            "4.19.0-beta-2",
            "10.0.0",
        ] {
            assert!(is_router_version(v), "{v}");
        }
        for v in ["4.22", "4", "", "x.y.z", "4.22.0.1.2", "4.22.0 ", "4..0"] {
            assert!(!is_router_version(v), "{v}");
        }
    }

    #[test]
    fn one_ampersand_and_the_version_third() {
        let l = template_version_line("4.22.0", &hex(&[0xab; 64]));
        let parts: Vec<&str> = l.split('&').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].split(' ').nth(2), Some("4.22.0"));
        assert_eq!(parts[1].trim_end().len(), 128);
        assert!(l.ends_with('\n'));
    }
}
