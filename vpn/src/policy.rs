//! CloudStack policy strings -> strongSwan proposals.
//!
//! CloudStack writes `cipher-hash[;dhgroup]`, several proposals comma-separated, e.g.
//! `aes128-sha1;modp1536,3des-md5`. strongSwan wants `aes128-sha1-modp1536` and `3des-md5`.
//! An unknown cipher, hash or group is an error that says which part.

use std::fmt;

pub const CIPHERS: &[&str] = &[
    "3des",
    "aes128",
    "aes192",
    "aes256",
    "aes128gcm16",
    "aes192gcm16",
    "aes256gcm16",
    "aes128ctr",
    "aes192ctr",
    "aes256ctr",
    "chacha20poly1305",
];
pub const HASHES: &[&str] = &["md5", "sha1", "sha256", "sha384", "sha512", "aesxcbc"];
pub const GROUPS: &[&str] = &[
    "modp768",
    "modp1024",
    "modp1536",
    "modp2048",
    "modp3072",
    "modp4096",
    "modp6144",
    "modp8192",
    "ecp256",
    "ecp384",
    "ecp521",
    "curve25519",
    "x25519",
];

/// Why a policy string is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    Empty,
    Cipher(String),
    Hash(String),
    Group(String),
    Shape(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Empty => f.write_str("empty policy"),
            PolicyError::Cipher(c) => {
                write!(f, "unknown cipher {c:?} (known: {})", CIPHERS.join(", "))
            }
            PolicyError::Hash(h) => write!(f, "unknown hash {h:?} (known: {})", HASHES.join(", ")),
            PolicyError::Group(g) => {
                write!(f, "unknown DH group {g:?} (known: {})", GROUPS.join(", "))
            }
            PolicyError::Shape(p) => write!(f, "proposal {p:?} is not cipher-hash[;group]"),
        }
    }
}

/// One proposal, e.g. `aes128-sha1-modp1536`. AEAD ciphers (gcm, chacha) take no hash.
fn proposal(p: &str) -> Result<String, PolicyError> {
    let p = p.trim().to_ascii_lowercase();
    if p.is_empty() {
        return Err(PolicyError::Empty);
    }
    let (algs, group) = match p.split_once(';') {
        Some((a, g)) => (a.to_string(), Some(g.trim().to_string())),
        None => (p.clone(), None),
    };
    let mut parts = algs.split('-').map(str::trim);
    let cipher = parts
        .next()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| PolicyError::Shape(p.clone()))?;
    if !CIPHERS.contains(&cipher) {
        return Err(PolicyError::Cipher(cipher.to_string()));
    }
    let aead = cipher.contains("gcm") || cipher.starts_with("chacha");
    let hash = parts.next();
    if parts.next().is_some() {
        return Err(PolicyError::Shape(p.clone()));
    }
    let mut out = cipher.to_string();
    match hash {
        Some(h) if HASHES.contains(&h) => {
            out.push('-');
            out.push_str(h);
        }
        Some(h) if aead && (h.starts_with("prf") || h.is_empty()) => {}
        Some(h) => return Err(PolicyError::Hash(h.to_string())),
        None if aead => {}
        None => return Err(PolicyError::Shape(p.clone())),
    }
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        let g = if g == "x25519" {
            "curve25519".to_string()
        } else {
            g
        };
        if !GROUPS.contains(&g.as_str()) {
            return Err(PolicyError::Group(g));
        }
        out.push('-');
        out.push_str(&g);
    }
    Ok(out)
}

/// All proposals of a CloudStack policy string.
pub fn proposals(policy: &str) -> Result<Vec<String>, PolicyError> {
    let list: Vec<String> = policy.split(',').map(proposal).collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err(PolicyError::Empty);
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudstack_policies_translate() {
        assert_eq!(
            proposals("aes128-sha1;modp1536").unwrap(),
            ["aes128-sha1-modp1536"]
        );
        assert_eq!(proposals("3des-md5").unwrap(), ["3des-md5"]);
        assert_eq!(
            proposals("aes256-sha256;modp2048,aes128-sha1;modp1024").unwrap(),
            ["aes256-sha256-modp2048", "aes128-sha1-modp1024"]
        );
        assert_eq!(
            proposals("AES128GCM16;ecp256").unwrap(),
            ["aes128gcm16-ecp256"]
        );
    }

    #[test]
    fn unknown_parts_are_named() {
        assert_eq!(
            proposals("blowfish-sha1").unwrap_err(),
            PolicyError::Cipher("blowfish".into())
        );
        assert_eq!(
            proposals("aes128-sha7").unwrap_err(),
            PolicyError::Hash("sha7".into())
        );
        assert_eq!(
            proposals("aes128-sha1;modp999").unwrap_err(),
            PolicyError::Group("modp999".into())
        );
        assert!(matches!(
            proposals("aes128").unwrap_err(),
            PolicyError::Shape(_)
        ));
        assert!(matches!(
            proposals("aes128-sha1-md5").unwrap_err(),
            PolicyError::Shape(_)
        ));
        assert_eq!(proposals(" ").unwrap_err(), PolicyError::Empty);
    }
}
