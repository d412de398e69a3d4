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
                    if let Err(e) = vr_guest::metadata::decode_user_data(c) {
                        errs.push(FieldError::new(
                            format!("vm_metadata[{i}][2]"),
                            vr_secret::REDACTED,
                            format!("user data is not base64: {e}"),
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
