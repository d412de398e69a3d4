//! The memo merge against the full merge, over random edits of a rule list.

use super::*;
use crate::quick_read::{read, Read};

fn rule(i: u32, revoke: bool, to: u32) -> String {
    format!(
        r#"{{"revoke":{revoke},"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"{p}:{p}","destination_ip_address":"10.1.1.{to}","destination_port_range":"80:80"}}"#,
        p = 10_000 + i
    )
}

fn push_sep(rules: &[String], sep: &str) -> String {
    format!(
        r#"{{"type":"forwardrules","delete_from_processed_cache":false,"rules":[{}]}}"#,
        rules.join(sep)
    )
}

fn push(rules: &[String]) -> String {
    push_sep(rules, ",")
}

fn base() -> DesiredState {
    serde_json::from_str(
        r#"{"interfaces":[{"device":"eth2","role":"public","addresses":["192.0.2.11/24"]}]}"#,
    )
    .unwrap()
}

/// The full merge of `text` onto `state` and the memo it leaves, as the agent does it.
fn full(state: &DesiredState, text: &str) -> Option<(DesiredState, Option<ForwardMemo>)> {
    let Read::Forwards(rules) = read(text) else {
        return None;
    };
    let (merged, _, keys) = crate::forward_delta::merge_keyed(state, &rules)?;
    let memo = keys
        .and_then(|k| ForwardMemo::of_push(text, k))
        .map(|mut m| {
            m.bind(&merged.state);
            m
        });
    Some((merged.state, memo))
}

fn via_memo(
    state: &DesiredState,
    text: &str,
    memo: &ForwardMemo,
) -> Option<(DesiredState, Delta, ForwardMemo)> {
    let (merged, delta, mut next) = merge(state, text, memo)?;
    next.bind(&merged.state);
    Some((merged.state, delta, next))
}

/// A small deterministic generator (xorshift): the test is the same every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Random edits of a 300-rule list (append, insert, delete, revoke, retarget, duplicate, a
/// second identity's rule moved, separators changed, the list emptied): wherever the memo
/// merges a push, its state is the full merge's; and it merges most of them.
#[test]
fn same_state_as_the_full_merge_over_random_edits() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rules: Vec<(u32, bool, u32)> = (0..300).map(|i| (i, false, 1 + i % 250)).collect();
    let render = |rules: &[(u32, bool, u32)], sep: &str| {
        push_sep(
            &rules
                .iter()
                .map(|&(i, r, to)| rule(i, r, to))
                .collect::<Vec<_>>(),
            sep,
        )
    };
    let (mut state, mut memo) = full(&base(), &render(&rules, ",")).unwrap();
    let mut next_id = 300;
    let (mut by_memo, mut total) = (0, 0);
    for round in 0..600 {
        let n = rules.len().max(1);
        match rng.below(9) {
            0 | 1 => {
                rules.push((next_id, false, 7));
                next_id += 1;
            }
            2 => {
                rules.insert(rng.below(n), (next_id, false, 8));
                next_id += 1;
            }
            3 if !rules.is_empty() => {
                rules.remove(rng.below(n));
            }
            4 if !rules.is_empty() => {
                let at = rng.below(n);
                rules[at].1 = !rules[at].1;
            }
            5 if !rules.is_empty() => {
                let at = rng.below(n);
                rules[at].2 = 1 + (rules[at].2 % 250);
            }
            6 if !rules.is_empty() => {
                // The same identity twice in one push: never from the memo.
                let r = rules[rng.below(n)];
                rules.insert(rng.below(n), r);
            }
            7 if rules.len() > 2 => {
                let r = rules.remove(rng.below(n));
                rules.insert(rng.below(rules.len()), r);
            }
            _ if round % 97 == 0 => rules.clear(),
            _ => {}
        }
        // A duplicate left in the list would keep every later push off the memo.
        let mut seen = std::collections::HashSet::new();
        let sep = if round % 13 == 0 { " ,\n " } else { "," };
        let text = render(&rules, sep);
        let memo_merge = memo.as_ref().and_then(|m| via_memo(&state, &text, m));
        let Some((full_state, full_memo)) = full(&state, &text) else {
            assert!(
                memo_merge.is_none(),
                "round {round}: memo merged what the full merge refuses"
            );
            rules.retain(|r| seen.insert(r.0));
            continue;
        };
        total += 1;
        match memo_merge {
            Some((s, _, m)) => {
                assert_eq!(s, full_state, "round {round}: {text}");
                by_memo += 1;
                state = s;
                memo = Some(m);
            }
            None => {
                state = full_state;
                memo = full_memo;
            }
        }
        rules.retain(|r| seen.insert(r.0));
    }
    assert!(
        by_memo * 10 >= total * 6,
        "the memo merged only {by_memo} of {total} pushes"
    );
}

/// One rule more: only the last block is read again, everything else counts as unchanged.
#[test]
fn one_rule_more_reads_one_block() {
    let list: Vec<String> = (0..1000).map(|i| rule(i, false, 1 + i % 250)).collect();
    let (state, memo) = full(&base(), &push(&list)).unwrap();
    let mut more = list.clone();
    more.push(rule(1000, false, 9));
    let (next, delta, next_memo) = via_memo(&state, &push(&more), &memo.unwrap()).unwrap();
    assert_eq!(delta.added, 1);
    assert_eq!(delta.unchanged, 1000);
    assert_eq!(next.nat.port_forwards.len(), 1001);
    assert_eq!(next_memo.keys.len(), 1001);
    assert_eq!(next_memo.blocks.len(), 1000 / BLOCK_RULES + 1);
    // And a revoke of a rule in the middle, from the new memo.
    more[500] = rule(500, true, 1);
    let (after, delta, _) = via_memo(&next, &push(&more), &next_memo).unwrap();
    assert_eq!(delta.removed, 1);
    assert_eq!(after.nat.port_forwards.len(), 1000);
    assert_eq!(after, full(&next, &push(&more)).unwrap().0);
}

/// Bytes that would not join validly, a changed state, changed interfaces: not from the memo.
#[test]
fn the_memo_is_used_only_where_it_holds() {
    let list: Vec<String> = (0..200).map(|i| rule(i, false, 1 + i % 250)).collect();
    let text = push(&list);
    let (state, memo) = full(&base(), &text).unwrap();
    let memo = memo.unwrap();
    assert!(via_memo(&state, &text, &memo).is_some(), "the same push");

    // Many changed rules (looked up through a map, not one by one): still the full merge's.
    let mut many = list.clone();
    for (i, r) in many.iter_mut().enumerate().skip(100).take(40) {
        *r = rule(i as u32, false, 200);
    }
    let (s, d, _) = via_memo(&state, &push(&many), &memo).unwrap();
    assert_eq!(d.replaced, 40);
    assert_eq!(s, full(&state, &push(&many)).unwrap().0);

    let double_comma = text.replacen("},{", "},,{", 1);
    assert!(via_memo(&state, &double_comma, &memo).is_none());
    let trailing_comma = text.replace("}]}", "},]}");
    assert!(via_memo(&state, &trailing_comma, &memo).is_none());
    let other_type = text.replace("forwardrules", "staticnatrules");
    assert!(via_memo(&state, &other_type, &memo).is_none());
    let mut nested = list.clone();
    nested[150] = nested[150].replace(r#""80:80""#, r#"{"a":1}"#);
    assert!(via_memo(&state, &push(&nested), &memo).is_none());

    let mut other = state.clone();
    other.nat.port_forwards.pop();
    assert!(via_memo(&other, &text, &memo).is_none(), "another list");
    let mut other = state.clone();
    other.interfaces[0].device = "eth3".into();
    assert!(via_memo(&other, &text, &memo).is_none(), "other interfaces");
}
