//! Honest answers: a push whose data is stored but not applied by this agent version (a
//! concern that has not landed yet) says so, by kind and by concern, in the message the
//! management server reads, instead of a plain "applied". The adapter names both
//! ([`NotApplied`]); the engine only words the sentence.

use crate::push::NotApplied;

/// `"; stored, NOT applied by this agent version: vmdata (metadata and user data), ..."`
/// (`dry_run`: "would be stored"), or nothing when everything was applied.
pub fn sentence(kinds: &[NotApplied], dry_run: bool) -> String {
    if kinds.is_empty() {
        return String::new();
    }
    let list: Vec<String> = kinds
        .iter()
        .map(|n| format!("{} ({})", n.kind, n.concern))
        .collect();
    let stored = if dry_run { "would be stored" } else { "stored" };
    format!(
        "; {stored}, NOT applied by this agent version: {}",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_kind_and_its_concern() {
        let vmdata = NotApplied {
            kind: "vmdata",
            concern: "metadata and user data",
        };
        let users = NotApplied {
            kind: "vpnuserlist",
            concern: "remote-access VPN",
        };
        assert_eq!(sentence(&[], false), "");
        assert!(sentence(&[vmdata], true).starts_with("; would be stored, NOT"));
        assert_eq!(
            sentence(&[vmdata, users], false),
            "; stored, NOT applied by this agent version: vmdata (metadata and user data), \
             vpnuserlist (remote-access VPN)"
        );
    }
}
