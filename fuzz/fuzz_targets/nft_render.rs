//! Any state that validates builds a ruleset, plans against itself to nothing, and renders to
//! text without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vr_agent::state::DesiredState;

fuzz_target!(|data: &[u8]| {
    let Ok(state) = serde_json::from_slice::<DesiredState>(data) else { return };
    if vr_agent::validate::validate_state(&state).is_err() {
        return;
    }
    if let Ok(Some(rs)) = vr_agent::concern::nft::desired_ruleset(&state) {
        let text = vr_nat::render::full(&rs);
        assert!(text.starts_with("table ip vr"));
        assert!(vr_nat::plan::plan(Some(&rs), &rs).changes() == 0, "a ruleset differs from itself");
    }
});
