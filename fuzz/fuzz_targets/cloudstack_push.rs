//! CloudStack pushes: arbitrary bytes wrapped as a `"type"`-tagged payload or as the body of a
//! `VR-<uuid>.cfg` container, on top of a realistic current state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vr_agent::push::{prepare, LocalNics};
use vr_agent::state::DesiredState;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let base = DesiredState::default();
    let _ = prepare(&base, text, &LocalNics::new());
    let container = format!(
        "#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n<file>\n/var/cache/cloud/x.json.1\n{text}\n</file>\n<script>\n/opt/cloud/bin/update_config.py x.json.1\n</script>\n"
    );
    let _ = prepare(&base, &container, &LocalNics::new());
});
