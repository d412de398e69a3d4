//! CloudStack `vmdata` and `vmpassword` into the native `metadata` and `passwords` sections,
//! with `CsVmMetadata`'s semantics (contract section 17.3): only the `userdata` and
//! `metadata` folders are served; an empty string deletes that file, `null` makes it empty;
//! files not mentioned are kept (keys accumulate per VM); a VM left with nothing is dropped.
//! User data must decode (base64, padded as CloudStack pads it): otherwise the push is
//! rejected, naming the triple, never quoting the value.

use std::net::Ipv4Addr;

use vr_secret::Secret;

use super::later::{VmData, VmPassword};
use crate::error::{FieldError, Invalid};
use crate::state::DesiredState;

/// A validated `vmdata` (the adapter's `later` checks ran).
pub fn vm_data(next: &mut DesiredState, d: &VmData) -> Result<(), Invalid> {
    let Ok(ip) = d.vm_ip_address.trim().parse::<Ipv4Addr>() else {
        return Ok(());
    };
    let mut errs = Vec::new();
    let vm = next.metadata.vms.entry(ip).or_default();
    for (i, t) in d.vm_metadata.iter().enumerate() {
        let part = |j: usize| t.0.get(j).cloned().flatten();
        let (Some(folder), Some(file)) = (part(0), part(1)) else {
            continue;
        };
        let content = part(2);
        match folder.as_str() {
            "userdata" if file == "user-data" => {
                if let Some(c) = content.as_deref().filter(|c| !c.is_empty()) {
                    // The decoder's message would quote a byte of the secret: not given.
                    if vr_guest::metadata::decode_user_data(c).is_err() {
                        errs.push(FieldError::new(
                            format!("vm_metadata[{i}][2]"),
                            vr_secret::REDACTED,
                            "user data is not base64",
                        ));
                        continue;
                    }
                }
                vm.set_user_data(content.as_deref());
            }
            "metadata" => vm.set_key(&file, content.as_deref()),
            // Other folders (and other user-data files) are written but never reachable
            // through CloudStack's rewrite rules: nothing to serve.
            _ => {}
        }
    }
    if vm.is_empty() {
        next.metadata.vms.remove(&ip);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Invalid(errs))
    }
}

/// A validated `vmpassword`: served to that address until the guest acknowledges it.
pub fn vm_password(next: &mut DesiredState, p: &VmPassword) {
    if let Ok(ip) = p.ip_address.trim().parse::<Ipv4Addr>() {
        next.passwords
            .set(ip, Secret::new(p.password.expose().to_string()));
    }
}

/// A state written by an agent version that stored `vmdata` and `vmpassword` as pending
/// ("accepted, not yet applied"): their entries move into the native sections, so the
/// upgraded agent serves them from its first replay. Entries that do not read are left
/// where they are.
pub fn adopt_pending(state: &mut DesiredState) {
    for kind in ["vmdata", "vmpassword"] {
        let Some(entries) = state.cloudstack.pending.remove(kind) else {
            continue;
        };
        let mut kept = std::collections::BTreeMap::new();
        for (id, v) in entries {
            let adopted = match kind {
                "vmdata" => serde_json::from_value::<VmData>(v.clone())
                    .ok()
                    .is_some_and(|d| vm_data(state, &d).is_ok()),
                _ => serde_json::from_value::<VmPassword>(v.clone())
                    .ok()
                    .map(|p| vm_password(state, &p))
                    .is_some(),
            };
            if !adopted {
                kept.insert(id, v);
            }
        }
        if !kept.is_empty() {
            state.cloudstack.pending.insert(kind.to_string(), kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{merge, parse_payload, LocalNics};

    fn push(state: &DesiredState, text: &str) -> Result<DesiredState, Invalid> {
        let p = parse_payload(text)?;
        merge(state, &p, &LocalNics::new()).map(|m| {
            assert!(m.not_yet_applied.is_empty(), "{:?}", m.not_yet_applied);
            m.state
        })
    }

    fn vmdata(triples: &str) -> String {
        format!(
            r#"{{"type":"vmdata","delete_from_processed_cache":false,"vm_ip_address":"10.1.1.23","vm_metadata":[{triples}]}}"#
        )
    }

    #[test]
    fn null_empty_accumulate_and_removal() {
        let ip: Ipv4Addr = "10.1.1.23".parse().unwrap();
        let s = push(
            &DesiredState::default(),
            &vmdata(r#"["userdata","user-data","aGk"],["metadata","instance-id","i-1"],["metadata","vm-id",null],["other","x","y"]"#),
        )
        .unwrap();
        let vm = &s.metadata.vms[&ip];
        assert_eq!(vm.user_data.as_ref().unwrap().expose(), "aGk");
        assert_eq!(vm.key("vm-id"), Some(""));
        assert_eq!(vm.keys.len(), 2, "other folders are not served");
        // A later push adds keys and keeps the others.
        let s = push(&s, &vmdata(r#"["metadata","public-keys","ssh-ed25519 K"]"#)).unwrap();
        assert_eq!(s.metadata.vms[&ip].keys.len(), 3);
        // `null` user data is an empty file; "" deletes every file; nothing left: VM gone.
        let s = push(&s, &vmdata(r#"["userdata","user-data",null]"#)).unwrap();
        assert_eq!(s.metadata.vms[&ip].user_data.as_ref().unwrap().expose(), "");
        let s = push(
            &s,
            &vmdata(r#"["userdata","user-data",""],["metadata","instance-id",""],["metadata","vm-id",""],["metadata","public-keys",""]"#),
        )
        .unwrap();
        assert!(s.metadata.vms.is_empty());
    }

    #[test]
    fn bad_user_data_names_the_triple_never_the_value() {
        let err = push(
            &DesiredState::default(),
            &vmdata(r#"["metadata","instance-id","i-1"],["userdata","user-data","c2Vj!!!cmV0-a"]"#),
        )
        .unwrap_err();
        assert_eq!(err.0[0].path, "vm_metadata[1][2]");
        assert!(!err.to_string().contains("c2Vj"), "{err}");
    }

    #[test]
    fn pending_entries_of_an_older_agent_are_adopted() {
        let mut ctx = crate::state::CloudStackContext::default();
        for text in [
            vmdata(r#"["userdata","user-data","aGk="],["metadata","instance-id","i-1"]"#),
            r#"{"type":"vmpassword","ip_address":"10.1.1.23","password":"old-pw"}"#.to_string(),
        ] {
            let Ok(crate::Payload::Later(p)) = parse_payload(&text) else {
                panic!("later payload")
            };
            crate::later::store(&p, &mut ctx);
        }
        let mut s = DesiredState {
            cloudstack: ctx,
            ..Default::default()
        };
        adopt_pending(&mut s);
        assert!(s.cloudstack.pending.is_empty());
        let ip: Ipv4Addr = "10.1.1.23".parse().unwrap();
        assert_eq!(s.metadata.vms[&ip].key("instance-id"), Some("i-1"));
        assert_eq!(s.passwords.pending[&ip].password.expose(), "old-pw");
    }
}
