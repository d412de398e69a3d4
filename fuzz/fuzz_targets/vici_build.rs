//! Any VPN section that validates yields VICI messages whose printed form never shows a PSK.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vr_vpn::vici::{load_conn, load_shared};
use vr_vpn::VpnSection;

fuzz_target!(|data: &[u8]| {
    let Ok(section) = serde_json::from_slice::<VpnSection>(data) else { return };
    if vr_vpn::validate_vpn(&section).is_err() {
        return;
    }
    for c in &section.site_to_site {
        let text = format!("{}{}", load_shared(c), load_conn(c));
        let psk = c.psk.expose();
        if psk.len() >= 4 {
            assert!(!text.contains(psk), "PSK printed");
        }
    }
});
