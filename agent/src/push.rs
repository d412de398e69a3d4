//! From push text to the next desired state: recognise the format, parse strictly, merge,
//! validate. Pure but for nothing: the caller passes the local NICs in.

use serde::Serialize;
use vr_nat::model::PortForward;
use vr_nat::shared::ListId;

use crate::concern::Outcome;
use crate::error::{FieldError, Invalid};
use crate::parse::{parse_strict, MAX_PUSH_BYTES};
use crate::state::{DesiredState, MacAddr, StateDocument, SCHEMA_VERSION};
pub use vr_cloudstack::forward_memo::ForwardMemo;
pub use vr_model::{LocalNics, NotApplied};

/// A committed state read at start, brought up to this version: data an older version's
/// adapter kept as "stored, not applied" that this version applies moves into its sections
/// (today: CloudStack `vmdata` and `vmpassword` into `metadata` and `passwords`).
pub fn upgrade_stored(state: &mut DesiredState) {
    vr_cloudstack::vmdata::adopt_pending(state);
    vr_cloudstack::ravpn::adopt_pending(state);
    vr_cloudstack::lb::adopt_pending(state);
    vr_cloudstack::monitor::adopt_pending(state);
}

/// Which format a push was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `{"schema": 1, ...}`
    Native,
    /// One `"type"`-tagged CloudStack payload.
    Cloudstack,
    /// A CloudStack `VR-<uuid>.cfg` container of several payloads, applied as one unit.
    CloudstackAggregate,
}

/// The outcome of the pure part of a push.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub format: Format,
    pub state: DesiredState,
    /// Kinds the adapter stored but this agent version does not apply, named by the adapter.
    pub not_yet_applied: Vec<NotApplied>,
    /// A `forwardrules` push's memo, bound to `state`: the next such push is merged from what
    /// changed (see [`ForwardMemo`]).
    pub memo: Option<ForwardMemo>,
}

/// Parses, merges and validates `text` on top of `current`. Nothing is applied. At most
/// [`MAX_ERRORS`](crate::error::MAX_ERRORS) errors are listed, the rest counted.
pub fn prepare(current: &DesiredState, text: &str, nics: &LocalNics) -> Result<Prepared, Invalid> {
    prepare_with(current, text, nics, Earlier::default())
}

/// What earlier pushes left that spares the next one work (issue 15). Each is only a
/// shortcut: without it the push is prepared the same, from its whole text.
#[derive(Debug, Default, Clone, Copy)]
pub struct Earlier<'a> {
    /// The last `forwardrules` push's memo: such a push is merged from what changed where the
    /// memo holds.
    pub memo: Option<&'a ForwardMemo>,
    /// The port-forward list the last accepted push validated: a push that leaves it as it is
    /// (shared, not a copy) does not validate it again.
    pub valid_forwards: Option<&'a ListId<PortForward>>,
}

/// [`prepare`], with what the `earlier` pushes left.
pub fn prepare_with(
    current: &DesiredState,
    text: &str,
    nics: &LocalNics,
    earlier: Earlier<'_>,
) -> Result<Prepared, Invalid> {
    prepare_all(current, text, nics, earlier).map_err(|e| Invalid::capped(e.0))
}

fn prepare_all(
    current: &DesiredState,
    text: &str,
    nics: &LocalNics,
    earlier: Earlier<'_>,
) -> Result<Prepared, Invalid> {
    if text.len() > MAX_PUSH_BYTES {
        return Err(FieldError::new(
            "(document)",
            format!("{} bytes", text.len()),
            format!("push larger than the {MAX_PUSH_BYTES}-byte limit"),
        )
        .into());
    }
    let mut prepared = match earlier.memo.and_then(|m| from_memo(current, text, m)) {
        Some(p) => p,
        None => prepare_whole(current, text, nics)?,
    };
    let _validating = crate::timing::phase("validate");
    crate::validate::validate_state_except(&prepared.state, earlier.valid_forwards)?;
    if let Some(m) = &mut prepared.memo {
        m.bind(&prepared.state);
    }
    Ok(prepared)
}

/// A `forwardrules` push merged from the last one's memo: only its changed bytes are read.
fn from_memo(current: &DesiredState, text: &str, memo: &ForwardMemo) -> Option<Prepared> {
    let _merging = crate::timing::phase("merge-memo");
    let (merged, delta, next) = vr_cloudstack::forward_memo::merge(current, text, memo)?;
    tracing::debug!(?delta, "forwardrules merged from the last push's memo");
    Some(Prepared {
        format: Format::Cloudstack,
        state: merged.state,
        not_yet_applied: Vec::new(),
        memo: Some(next),
    })
}

fn prepare_whole(
    current: &DesiredState,
    text: &str,
    nics: &LocalNics,
) -> Result<Prepared, Invalid> {
    let prepared = match detect(text) {
        Detected::Aggregate => cloudstack_aggregate(current, text, nics)?,
        Detected::Forwards(rules) => {
            let merged = cloudstack_forwards(current, text, &rules);
            // The borrowed rules (104 bytes each) go before the full parse, which the
            // rejections take: 45,000 invalid rules held 4.7 MB through it (the hostile
            // corpus's peak).
            drop(rules);
            match merged {
                Some(p) => p,
                None => cloudstack_payload(current, text, nics)?,
            }
        }
        Detected::CloudStack => cloudstack_payload(current, text, nics)?,
        Detected::Native => {
            let parsing = crate::timing::phase("parse");
            let mut doc: StateDocument = parse_strict(text)?;
            drop(parsing);
            // A NIC named by MAC gets its kernel name now, once: addresses, routes and the
            // nftables ruleset (which matches on names) then all mean the same NIC.
            for i in doc.interfaces.iter_mut().flatten() {
                if let Some(name) = i.mac.and_then(|m| nics.get(&m)) {
                    i.device = name.clone();
                }
            }
            if doc.schema != SCHEMA_VERSION {
                return Err(FieldError::new(
                    "schema",
                    doc.schema,
                    format!("unsupported schema (this agent reads {SCHEMA_VERSION})"),
                )
                .into());
            }
            let _merging = crate::timing::phase("merge");
            Prepared {
                format: Format::Native,
                state: current.merge_native(doc),
                not_yet_applied: Vec::new(),
                memo: None,
            }
        }
    };
    Ok(prepared)
}

/// A `forwardrules` push read in one pass, merged as a delta against the stored forwards;
/// `None` when the reporting path must parse it again and say what is wrong (issue 15).
fn cloudstack_forwards(
    current: &DesiredState,
    text: &str,
    rules: &[vr_cloudstack::quick_read::ForwardRuleRef<'_>],
) -> Option<Prepared> {
    let merging = crate::timing::phase("merge");
    let (merged, delta, keys) = vr_cloudstack::forward_delta::merge_keyed(current, rules)?;
    drop(merging);
    tracing::debug!(?delta, "forwardrules merged as a delta");
    let _memo = crate::timing::phase("memo");
    Some(Prepared {
        format: Format::Cloudstack,
        not_yet_applied: Vec::new(),
        state: merged.state,
        memo: keys.and_then(|k| ForwardMemo::of_push(text, k)),
    })
}

/// One CloudStack payload on top of `current`.
fn cloudstack_payload(
    current: &DesiredState,
    text: &str,
    nics: &LocalNics,
) -> Result<Prepared, Invalid> {
    let parsing = crate::timing::phase("parse");
    let payload = vr_cloudstack::parse_payload(text)?;
    drop(parsing);
    let _merging = crate::timing::phase("merge");
    let merged = vr_cloudstack::merge(current, &payload, nics)?;
    Ok(Prepared {
        format: Format::Cloudstack,
        not_yet_applied: merged.not_applied(),
        state: merged.state,
        memo: None,
    })
}

/// A `VR-<uuid>.cfg` container: every payload in order, as one unit that fails whole.
fn cloudstack_aggregate(
    current: &DesiredState,
    text: &str,
    nics: &LocalNics,
) -> Result<Prepared, Invalid> {
    let parsing = crate::timing::phase("parse");
    let entries = vr_cloudstack::parse_aggregate(text)?;
    drop(parsing);
    let _merging = crate::timing::phase("merge");
    let merged = vr_cloudstack::merge_aggregate(current, &entries, nics)?;
    Ok(Prepared {
        format: Format::CloudstackAggregate,
        not_yet_applied: merged.not_applied(),
        state: merged.state,
        memo: None,
    })
}

enum Detected<'a> {
    Native,
    CloudStack,
    /// A `forwardrules` payload, its rules already read (borrowed from the push text).
    Forwards(Vec<vr_cloudstack::quick_read::ForwardRuleRef<'a>>),
    Aggregate,
}

/// A push is CloudStack when its top-level object has a `"type"`; an aggregate container
/// starts with its header comment or a `<version>`/`<file>` tag. Never by file name. The
/// common large push, a `forwardrules` list, is read in the same pass (see
/// [`vr_cloudstack::quick_read`]); the probe below decides whatever that pass leaves open.
fn detect(text: &str) -> Detected<'_> {
    let _detecting = crate::timing::phase("detect");
    if vr_cloudstack::is_aggregate(text) {
        return Detected::Aggregate;
    }
    match vr_cloudstack::quick_read::read(text) {
        vr_cloudstack::quick_read::Read::Native => return Detected::Native,
        vr_cloudstack::quick_read::Read::Forwards(rules) => return Detected::Forwards(rules),
        vr_cloudstack::quick_read::Read::Undecided => {}
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        kind: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<Probe>(text) {
        Ok(Probe { kind: Some(_) }) => Detected::CloudStack,
        _ => Detected::Native,
    }
}

/// What a push answers (also `<name>.result.json` in the spool).
#[derive(Debug, Clone, Serialize)]
pub struct PushResult {
    /// File name (or `-` for standard input).
    pub name: String,
    /// True only if the push was valid and every concern applied (or is retried later).
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The committed generation after this push (unchanged when it failed).
    pub generation: u64,
    /// Seconds since the epoch when the push was received.
    pub received_at: u64,
    pub millis: u64,
    /// One-line summary.
    pub message: String,
    /// Invalid fields (the push was rejected whole).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<Outcome>,
    /// Stored, but this agent version does not apply these yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_yet_applied: Vec<String>,
    /// `--dry-run`: the plan, as the commands it stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// Errors a history entry keeps (its message still counts them all).
const SUMMARY_ERRORS: usize = 3;

/// Longest push name a history entry keeps, in bytes (a file name's limit).
const SUMMARY_NAME: usize = 255;

impl PushResult {
    /// A result not yet decided: not ok, nothing applied, `generation` the committed one.
    pub fn pending(name: String, generation: u64) -> PushResult {
        PushResult {
            name,
            ok: false,
            format: None,
            generation,
            received_at: now_secs(),
            millis: 0,
            message: String::new(),
            errors: Vec::new(),
            outcomes: Vec::new(),
            not_yet_applied: Vec::new(),
            plan: None,
        }
    }

    /// What the push history keeps: the verdict, the message, the outcomes and the first few
    /// errors; no plan, no long name. A hundred entries then stay small whatever was pushed.
    pub fn summary(&self) -> PushResult {
        let mut name = self.name.clone();
        if name.len() > SUMMARY_NAME {
            let mut cut = SUMMARY_NAME - 3;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
            name.push_str("...");
        }
        PushResult {
            name,
            ok: self.ok,
            format: self.format,
            generation: self.generation,
            received_at: self.received_at,
            millis: self.millis,
            message: crate::excerpt::truncate_to(&self.message, 1024),
            errors: self.errors.iter().take(SUMMARY_ERRORS).cloned().collect(),
            outcomes: self.outcomes.clone(),
            not_yet_applied: self.not_yet_applied.clone(),
            plan: None,
        }
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the local NICs' MAC addresses from sysfs.
pub fn local_nics() -> LocalNics {
    let mut out = LocalNics::new();
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(mac) = std::fs::read_to_string(entry.path().join("address")) {
                if let Ok(mac) = mac.trim().parse::<MacAddr>() {
                    if mac.0 != [0; 6] {
                        out.entry(mac).or_insert(name);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_push_merges_and_validates() {
        let p = prepare(
            &DesiredState::default(),
            r#"{"schema":1,"routes":[{"destination":"10.9.0.0/16","gateway":"10.1.1.1"}]}"#,
            &LocalNics::new(),
        )
        .unwrap();
        assert_eq!(p.format, Format::Native);
        assert_eq!(p.state.routes.len(), 1);
    }

    #[test]
    fn wrong_schema_is_named() {
        let err = prepare(
            &DesiredState::default(),
            r#"{"schema":2}"#,
            &LocalNics::new(),
        )
        .unwrap_err();
        assert_eq!(err.0[0].path, "schema");
        assert_eq!(err.0[0].value, "2");
    }

    /// A `forwardrules` push of `rules` (JSON objects).
    fn forwards(rules: &[String]) -> String {
        format!(r#"{{"type":"forwardrules","rules":[{}]}}"#, rules.join(","))
    }

    fn fwd(port: &str, to: &str) -> String {
        format!(
            r#"{{"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"{port}","destination_ip_address":"{to}","destination_port_range":"{port}"}}"#
        )
    }

    fn public_nic() -> DesiredState {
        let native = r#"{"schema":1,"interfaces":[{"device":"eth2","role":"public","addresses":["192.0.2.11/24"]}]}"#;
        prepare(&DesiredState::default(), native, &LocalNics::new())
            .unwrap()
            .state
    }

    /// Issue 15: a re-sent list merged as a delta gives the reporting path's state, and a
    /// conflict between a new rule and an unchanged one is still named, whichever check finds
    /// it (the adapter's in-push one, or the state's overlap check).
    #[test]
    fn forward_lists_merge_as_deltas_and_conflicts_are_named() {
        let nics = LocalNics::new();
        let stored = prepare(&public_nic(), &forwards(&[fwd("22", "10.1.1.5")]), &nics)
            .unwrap()
            .state;
        let plus = forwards(&[fwd("22", "10.1.1.5"), fwd("23", "10.1.1.6")]);
        let quick = prepare(&stored, &plus, &nics).unwrap();
        assert_eq!(quick.format, Format::Cloudstack);
        let slow = vr_cloudstack::merge(
            &stored,
            &vr_cloudstack::parse_payload(&plus).unwrap(),
            &nics,
        )
        .unwrap();
        assert_eq!(quick.state, slow.state);
        assert_eq!(
            quick.state.nat.port_forwards[1].device.as_deref(),
            Some("eth2")
        );

        let same_port = forwards(&[fwd("22", "10.1.1.5"), fwd("22", "10.1.1.9")]);
        let err = prepare(&stored, &same_port, &nics).unwrap_err();
        assert_eq!(err.0[0].path, "rules[1].source_port_range", "{err}");
        assert_eq!(err.0[0].value, "\"22\"", "{err}");

        let overlap = forwards(&[fwd("22", "10.1.1.5"), fwd("20:25", "10.1.1.9")]);
        let err = prepare(&stored, &overlap, &nics).unwrap_err();
        assert_eq!(err.0[0].path, "nat.port_forwards[1].public_ports", "{err}");
        assert!(err.0[0].reason.contains("port_forwards[0]"), "{err}");
    }

    #[test]
    fn detection_uses_type_not_name() {
        assert!(matches!(
            detect(r#"{"type":"ips","ip_address":[]}"#),
            Detected::CloudStack
        ));
        assert!(matches!(detect(r#"{"schema":1}"#), Detected::Native));
        assert!(matches!(
            detect("#Apache CloudStack Virtual Router Config File\n"),
            Detected::Aggregate
        ));
    }
}
