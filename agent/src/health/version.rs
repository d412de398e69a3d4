//! `router_version_check.py`: the version the management server expects (the release line
//! and scripts signature it stored when the router started, CloudStack's `routerVersion`)
//! against what this router answers `get_template_version.sh` with now: the release's version
//! word must be the same, and so must the signature when the management server sent one.
//! After an upgrade of the agent's package without a restart of the router, this fails, as
//! upstream's check does after a template change.

use std::time::Instant;

use vr_model::monitor::ExpectedVersion;

use super::{outcome, Env, Outcome};
use crate::diag::check::Verdict;

const NAME: &str = "router_version_check.py";

/// The version word of a release line (`Cloudstack Release 4.22.0 <date>`: the third word,
/// as the management server's `trimRouterVersion` takes it), or the text itself when it is
/// just a version.
pub fn version_word(text: &str) -> &str {
    let t = text.trim();
    let words: Vec<&str> = t.split_whitespace().collect();
    match words.as_slice() {
        [_, _, v, ..] if t.to_ascii_lowercase().starts_with("cloudstack release") => v,
        _ => t,
    }
}

pub fn check(want: &ExpectedVersion, env: &Env) -> Outcome {
    let t = Instant::now();
    let expected = version_word(&want.template);
    let ours = env.cloudstack_version.as_str();
    if expected != ours {
        let msg = format!("Template Version mismatch. Expected: {expected}, found: {ours}");
        return outcome(NAME, t, Verdict::Fail, msg);
    }
    if let Some(sig) = want.scripts.as_deref().map(str::trim) {
        match crate::cli::cloudstack::router::signature(&env.cloudstack_dir) {
            Ok(s) if s == sig => {}
            Ok(s) => {
                let msg = format!("Scripts Version mismatch. Expected: {sig}, found: {s}");
                return outcome(NAME, t, Verdict::Fail, msg);
            }
            Err(e) => {
                let msg = format!("Scripts signature unreadable: {e}");
                return outcome(NAME, t, Verdict::Fail, msg);
            }
        }
    }
    let msg = format!("Template and scripts version match successful ({ours})");
    outcome(NAME, t, Verdict::Ok, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_word_as_the_management_server_reads_it() {
        assert_eq!(
            version_word("Cloudstack Release 4.22.0 Thu Oct 30 10:00:00 UTC 2025"),
            "4.22.0"
        );
        assert_eq!(version_word(" 4.20.1 "), "4.20.1");
    }
}
