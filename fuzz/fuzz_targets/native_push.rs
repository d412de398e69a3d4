//! The whole pure push path on arbitrary bytes: format detection, strict parse, merge,
//! validation. It must never panic and never accept a push that fails validation on replay.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vr_agent::push::{prepare, LocalNics};
use vr_agent::state::DesiredState;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = prepare(&DesiredState::default(), text, &LocalNics::new()) {
        // What is accepted must survive the store round trip and validate again.
        let stored = serde_json::to_string(&p.state).expect("serializable");
        let back: DesiredState = serde_json::from_str(&stored).expect("stored state parses");
        assert_eq!(back, p.state);
        vr_agent::validate::validate_state(&back).expect("accepted state validates");
    }
});
