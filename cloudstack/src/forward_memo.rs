//! A `forwardrules` push merged from what changed since the last one (issue 15).
//!
//! CloudStack re-sends a network's whole rule list with every change, in the same order: a
//! push of 10,000 rules that adds one is the last push with one rule more. Reading and
//! merging all 10,000 again cost ~7 ms of the push (JSON walk, then parsing every address
//! and port range and looking it up), where only one rule changed.
//!
//! After a forwardrules push is merged, the agent keeps a memo of its text: the rule list
//! cut into blocks of [`BLOCK_RULES`] rules, each with a BLAKE3 hash of its bytes, the hash
//! of the text before and after the list, and the identity of every rule. The next push is
//! compared block by block from the front and from the back; the blocks whose bytes equal
//! the last push's are skipped (the same bytes are the same rules, already merged), and only
//! the bytes between them (the changed rules and whatever shares their blocks) are parsed
//! and merged. Hashing 1.7 MB costs ~0.5 ms; parsing it costs ~3 ms and merging ~4.
//!
//! Not a guess: a hash match is the same bytes (BLAKE3 has no known collisions, and none can
//! be made on purpose), and the memo is used only when the merge from it must give exactly
//! the full merge's state ([`crate::forward_delta`], the reporting path's equal):
//! - the state still holds exactly the list the memo's push produced ([`ListId`]: any other
//!   change to the forwards makes a new list), and the same interfaces (a forward's device
//!   comes from them);
//! - no two rules of the last push shared an identity, and no changed rule shares one with
//!   an unchanged rule or another changed one, so no rule's effect depends on another's
//!   (the full merge's in-push conflicts and revoke-then-add orders cannot arise);
//! - the changed bytes join the unchanged ones as valid JSON (commas between rules only),
//!   and each changed rule passes the quick reader's and the quick conversion's checks.
//!
//! Anything else answers `None`, and the push is read and merged whole, as before.

use vr_nat::shared::ListId;
use vr_nat::PortForward;

use crate::forward_delta::{finish, key, Delta, Devices};
use crate::quick_read::ForwardRuleRef;
use crate::rule_spans::{self, Item};
use crate::state::{DesiredState, Interface};
use crate::Merged;
use vr_model::oversize::MAX_ITEMS;

/// Rules per block: a changed rule costs parsing its block's neighbours (~64 µs), a block
/// costs one hash and 56 bytes of memo (10,000 rules: 157 blocks).
pub const BLOCK_RULES: usize = 64;

#[derive(Debug, Clone)]
struct Block {
    /// Byte span in the push text: whole rules and the separators after them.
    start: usize,
    end: usize,
    /// Rules in the span.
    rules: usize,
    hash: blake3::Hash,
}

/// What the agent keeps of the last forwardrules push (see the module documentation): about
/// 24 bytes per rule (its identity, and its share of a block), never the text.
#[derive(Debug, Clone)]
pub struct ForwardMemo {
    /// The forward list this push produced; `None` until [`ForwardMemo::bind`].
    list: Option<ListId<PortForward>>,
    interfaces: Vec<Interface>,
    /// The push's length.
    len: usize,
    /// Hash of the text up to the list's content (its `[` included).
    header_end: usize,
    header: blake3::Hash,
    /// Offset of the list's `]`, and hash of the text from there.
    close: usize,
    trailer: blake3::Hash,
    blocks: Vec<Block>,
    /// Every rule's identity, push order.
    keys: Vec<u128>,
}

impl ForwardMemo {
    /// The memo of `text`, a push the full merge just merged; `keys`: its rules' identities,
    /// all different. `None` when the rule list cannot be told apart exactly.
    pub fn of_push(text: &str, keys: Vec<u128>) -> Option<ForwardMemo> {
        let list = rule_spans::find(text)?;
        let rules = list
            .items
            .iter()
            .filter(|i| matches!(i, Item::Rule { .. }))
            .count();
        if rules != keys.len() {
            return None;
        }
        let b = text.as_bytes();
        Some(ForwardMemo {
            list: None,
            interfaces: Vec::new(),
            len: text.len(),
            header_end: list.content_start,
            header: blake3::hash(&b[..list.content_start]),
            close: list.close,
            trailer: blake3::hash(&b[list.close..]),
            blocks: blocks(b, &list.items, list.content_start, list.close),
            keys,
        })
    }

    /// Ties the memo to the state its push produced (the committed state once it commits).
    pub fn bind(&mut self, state: &DesiredState) {
        self.list = Some(state.nat.port_forwards.id());
        self.interfaces.clone_from(&state.interfaces);
    }

    /// Whether the next push may be merged from this memo onto `state`.
    pub fn holds_for(&self, state: &DesiredState) -> bool {
        self.list
            .as_ref()
            .is_some_and(|l| l.is(&state.nat.port_forwards))
            && self.interfaces == state.interfaces
    }
}

/// Cuts a list's content `[from, to)` into blocks of [`BLOCK_RULES`] rules, each ending where
/// the next block's first rule starts (the last one at `to`).
fn blocks(b: &[u8], items: &[Item], from: usize, to: usize) -> Vec<Block> {
    let mut out = Vec::new();
    let mut start = from;
    let mut rules = 0;
    for item in items {
        if let Item::Rule { start: r, .. } = *item {
            if rules == BLOCK_RULES {
                out.push(block(b, start, r, rules));
                start = r;
                rules = 0;
            }
            rules += 1;
        }
    }
    if to > start {
        out.push(block(b, start, to, rules));
    }
    out
}

fn block(b: &[u8], start: usize, end: usize, rules: usize) -> Block {
    Block {
        start,
        end,
        rules,
        hash: blake3::hash(&b[start..end]),
    }
}

/// A token of the rule list, for checking that changed bytes join unchanged ones validly.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Open,
    Rule,
    Comma,
    Close,
}

/// The token ending just before `at` (skipping whitespace); `None`: not a list boundary.
fn token_before(b: &[u8], at: usize) -> Option<Token> {
    let c = b[..at].iter().rev().find(|c| !rule_spans::is_ws(**c))?;
    match c {
        b'[' => Some(Token::Open),
        b'}' => Some(Token::Rule),
        b',' => Some(Token::Comma),
        _ => None,
    }
}

/// The token starting at or after `at` (skipping whitespace).
fn token_after(b: &[u8], at: usize) -> Option<Token> {
    let c = b[at..].iter().find(|c| !rule_spans::is_ws(**c))?;
    match c {
        b']' => Some(Token::Close),
        b'{' => Some(Token::Rule),
        b',' => Some(Token::Comma),
        _ => None,
    }
}

/// Whether `tokens` is a JSON list's content: rules separated by single commas.
fn well_joined(tokens: impl Iterator<Item = Token>) -> bool {
    let mut prev = None;
    for t in tokens {
        let ok = matches!(
            (prev, t),
            (None, _)
                | (Some(Token::Open), Token::Rule | Token::Close)
                | (Some(Token::Rule), Token::Comma | Token::Close)
                | (Some(Token::Comma), Token::Rule)
        );
        if !ok {
            return false;
        }
        prev = Some(t);
    }
    true
}

/// A changed rule of the push.
struct Changed {
    revoke: bool,
    pf: PortForward,
    key: u128,
}

/// The changed rules' identities, looked up once per stored forward and per unchanged rule
/// (20,000 lookups at 10k): a few compared in a row (a +1 push has one, plus the rules of a
/// short block read again with it), more by binary search in a sorted copy. Not a hash map:
/// SipHash of 20,000 keys was a third of the memo merge.
enum ChangedKeys {
    Few(Vec<u128>),
    /// (identity, index of the changed rule), sorted.
    Sorted(Vec<(u128, usize)>),
}

/// Up to this many changed rules, a lookup compares them all.
const FEW: usize = 8;

impl ChangedKeys {
    /// `None` when two changed rules share an identity.
    fn of(changed: &[Changed]) -> Option<ChangedKeys> {
        if changed.len() <= FEW {
            let keys: Vec<u128> = changed.iter().map(|c| c.key).collect();
            let distinct = keys.iter().enumerate().all(|(i, k)| !keys[..i].contains(k));
            return distinct.then_some(ChangedKeys::Few(keys));
        }
        let mut sorted: Vec<(u128, usize)> = changed
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key, i))
            .collect();
        sorted.sort_unstable();
        let distinct = sorted.windows(2).all(|w| w[0].0 != w[1].0);
        distinct.then_some(ChangedKeys::Sorted(sorted))
    }

    /// The index of the changed rule of identity `key`.
    fn find(&self, key: u128) -> Option<usize> {
        match self {
            ChangedKeys::Few(keys) => keys.iter().position(|k| *k == key),
            ChangedKeys::Sorted(sorted) => sorted
                .binary_search_by_key(&key, |&(k, _)| k)
                .ok()
                .map(|i| sorted[i].1),
        }
    }
}

/// Merges `text` onto `state` from `memo` (see the module documentation): the merged state,
/// what changed, and the memo of `text` (not yet bound). `None`: merge it whole.
pub fn merge(
    state: &DesiredState,
    text: &str,
    memo: &ForwardMemo,
) -> Option<(Merged, Delta, ForwardMemo)> {
    if !memo.holds_for(state) {
        return None;
    }
    let b = text.as_bytes();
    let trailer_len = memo.len - memo.close;
    let close = b.len().checked_sub(trailer_len)?;
    if close < memo.header_end
        || blake3::hash(&b[..memo.header_end]) != memo.header
        || blake3::hash(&b[close..]) != memo.trailer
    {
        return None;
    }
    // The unchanged blocks at the front, then at the back (where they moved by the length
    // difference), never overlapping the front's.
    let same = |start: usize, end: usize, bl: &Block| blake3::hash(&b[start..end]) == bl.hash;
    let mut p = 0;
    while let Some(bl) = memo.blocks.get(p) {
        if bl.end > close || !same(bl.start, bl.end, bl) {
            break;
        }
        p += 1;
    }
    // A short block next to the change is read again with it, so that the blocks stay full
    // (a +1 push would otherwise leave a one-rule block behind every time).
    if p > 0 && memo.blocks[p - 1].rules < BLOCK_RULES {
        p -= 1;
    }
    let mid_start = p
        .checked_sub(1)
        .map_or(memo.header_end, |q| memo.blocks[q].end);
    let shift = |at: usize| (at + b.len()).checked_sub(memo.len);
    let mut s = memo.blocks.len();
    while s > p {
        let bl = &memo.blocks[s - 1];
        match (shift(bl.start), shift(bl.end)) {
            (Some(start), Some(end)) if start >= mid_start && same(start, end, bl) => s -= 1,
            _ => break,
        }
    }
    if s > p && s < memo.blocks.len() && memo.blocks[s].rules < BLOCK_RULES {
        s += 1;
    }
    let mid_end = match memo.blocks.get(s) {
        Some(bl) => shift(bl.start)?,
        None => close,
    };
    let (items, _) = rule_spans::scan_items(&b[..mid_end], mid_start, false)?;
    let tokens = items.iter().map(|i| match i {
        Item::Rule { .. } => Token::Rule,
        Item::Comma => Token::Comma,
    });
    let joined = std::iter::once(token_before(b, mid_start)?)
        .chain(tokens)
        .chain(std::iter::once(token_after(b, mid_end)?));
    if !well_joined(joined) {
        return None;
    }

    let k = memo.blocks[..p].iter().map(|bl| bl.rules).sum::<usize>();
    let j = memo.blocks[..s].iter().map(|bl| bl.rules).sum::<usize>();
    let mut changed = Vec::new();
    for item in &items {
        if let Item::Rule { start, end } = *item {
            let r: ForwardRuleRef<'_> = serde_json::from_str(&text[start..end]).ok()?;
            let pf = crate::forward_fast::quick_ref(&r)?;
            changed.push(Changed {
                revoke: r.revoke,
                key: key(&pf),
                pf,
            });
        }
    }
    if k + changed.len() + (memo.keys.len() - j) > MAX_ITEMS {
        return None;
    }
    // Identities: all different from each other and from the unchanged rules'.
    let changed_keys = ChangedKeys::of(&changed)?;
    if memo.keys[..k]
        .iter()
        .chain(&memo.keys[j..])
        .any(|key| changed_keys.find(*key).is_some())
    {
        return None;
    }
    // Where the changed identities are stored now: one pass, no index of the whole list.
    let mut stored_at = vec![None; changed.len()];
    if !changed.is_empty() {
        for (pos, pf) in state.nat.port_forwards.iter().enumerate() {
            if let Some(c) = changed_keys.find(key(pf)) {
                stored_at[c] = Some(pos);
            }
        }
    }

    let mut next = state.clone();
    let mut delta = Delta {
        unchanged: k + (memo.keys.len() - j),
        ..Delta::default()
    };
    let mut devices = Devices::default();
    let mut removed = Vec::new();
    for (c, &stored) in changed.iter().zip(&stored_at) {
        if c.revoke {
            if let Some(pos) = stored {
                removed.push(pos);
            }
            continue;
        }
        let mut pf = c.pf.clone();
        pf.device = devices.of(state, pf.public_ip).map(str::to_string);
        match stored {
            Some(pos) if state.nat.port_forwards[pos] == pf => delta.unchanged += 1,
            Some(pos) => {
                next.nat.port_forwards[pos] = pf;
                delta.replaced += 1;
            }
            None => {
                next.nat.port_forwards.push(pf);
                delta.added += 1;
            }
        }
    }
    if !removed.is_empty() {
        delta.removed = removed.len();
        removed.sort_unstable();
        let mut pos = 0;
        next.nat.port_forwards.retain(|_| {
            pos += 1;
            removed.binary_search(&(pos - 1)).is_err()
        });
    }

    let mut keys = Vec::with_capacity(k + changed.len() + memo.keys.len() - j);
    keys.extend_from_slice(&memo.keys[..k]);
    keys.extend(changed.iter().map(|c| c.key));
    keys.extend_from_slice(&memo.keys[j..]);
    let mut blocks_next = memo.blocks[..p].to_vec();
    blocks_next.extend(blocks(b, &items, mid_start, mid_end));
    blocks_next.extend(memo.blocks[s..].iter().map(|bl| Block {
        start: bl.start + b.len() - memo.len,
        end: bl.end + b.len() - memo.len,
        ..bl.clone()
    }));
    let next_memo = ForwardMemo {
        list: None,
        interfaces: Vec::new(),
        len: b.len(),
        header_end: memo.header_end,
        header: memo.header,
        close,
        trailer: memo.trailer,
        blocks: blocks_next,
        keys,
    };
    Some((finish(next), delta, next_memo))
}

#[cfg(test)]
#[path = "forward_memo_tests.rs"]
mod tests;
