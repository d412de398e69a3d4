//! Where the rules of a `forwardrules` push lie in its text: the byte spans the forward memo
//! ([`crate::forward_memo`]) cuts into blocks and compares with the next push.
//!
//! It only runs on a text [`crate::quick_read`] accepted (valid JSON of exactly the known
//! shape: a top-level object of `type`, `delete_from_processed_cache` and `rules`, each rule a
//! flat object of strings, booleans and nulls, no escaped string), so it only has to find
//! boundaries, not to judge; whatever it does not recognise makes it answer `None`, and the
//! push is merged without a memo.

/// One token of the rule list's content: a rule (its byte span) or the comma between two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Rule { start: usize, end: usize },
    Comma,
}

/// The rule list of a whole push: its content's span (after `[`, up to `]`) and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleList {
    /// Offset just after the list's `[`.
    pub content_start: usize,
    /// Offset of the list's `]`.
    pub close: usize,
    /// Rules and commas in order, spans relative to the whole text.
    pub items: Vec<Item>,
}

/// JSON's whitespace (not `u8::is_ascii_whitespace`, which also takes form feed).
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// The offset after the string starting at `b[i] == '"'`; `None` at an escape or no end.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let rest = b.get(i + 1..)?;
    let close = rest.iter().position(|&c| c == b'"' || c == b'\\')?;
    (rest[close] == b'"').then_some(i + 1 + close + 1)
}

/// Finds the `rules` list of a whole push and its items.
pub fn find(text: &str) -> Option<RuleList> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut found = None;
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' => return found,
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(b, i)?;
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if key == b"rules" {
            if b.get(i) != Some(&b'[') {
                return None;
            }
            let content_start = i + 1;
            let (items, close) = scan_items(b, content_start, true)?;
            found = Some(RuleList {
                content_start,
                close,
                items,
            });
            i = close + 1;
        } else {
            i = skip_scalar(b, i)?;
        }
        i = skip_ws(b, i);
        match b.get(i)? {
            b',' => i += 1,
            b'}' => return found,
            _ => return None,
        }
    }
}

/// A string, `true`, `false`, `null` or a number: the other top-level values quick_read knows.
fn skip_scalar(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        c if c.is_ascii_alphanumeric() || *c == b'-' => {
            let mut j = i;
            while j < b.len()
                && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'-' | b'+' | b'.'))
            {
                j += 1;
            }
            Some(j)
        }
        _ => None,
    }
}

/// The items from `from` on: up to the list's `]` (`to_close`, which is returned), or to the
/// end of `b` (a slice of a list's content).
pub fn scan_items(b: &[u8], from: usize, to_close: bool) -> Option<(Vec<Item>, usize)> {
    let mut items = Vec::new();
    let mut i = from;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            None if !to_close => return Some((items, i)),
            None => return None,
            Some(b']') if to_close => return Some((items, i)),
            Some(b',') => {
                items.push(Item::Comma);
                i += 1;
            }
            Some(b'{') => {
                let start = i;
                i = skip_flat_object(b, i)?;
                items.push(Item::Rule { start, end: i });
            }
            Some(_) => return None,
        }
    }
}

/// The offset after a flat object at `b[i] == '{'`: strings are skipped whole, so a `}` in
/// one does not end it; a nested object or list is not a rule quick_read accepted.
fn skip_flat_object(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match b.get(i)? {
            b'"' => i = skip_string(b, i)?,
            b'}' => return Some(i + 1),
            b'{' | b'[' | b']' => return None,
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rules_and_commas_wherever_the_list_is() {
        let text = r#" {"type":"forwardrules", "rules": [ {"a":"}{"} ,{"b":true} ] ,"delete_from_processed_cache":false}"#;
        let list = find(text).unwrap();
        let rules: Vec<&str> = list
            .items
            .iter()
            .filter_map(|i| match *i {
                Item::Rule { start, end } => Some(&text[start..end]),
                Item::Comma => None,
            })
            .collect();
        assert_eq!(rules, [r#"{"a":"}{"}"#, r#"{"b":true}"#]);
        assert_eq!(list.items.len(), 3);
        assert_eq!(&text[list.close..list.close + 1], "]");
        assert_eq!(&text[list.content_start - 1..list.content_start], "[");
    }

    #[test]
    fn anything_else_is_none() {
        assert!(find(r#"{"rules":[{"a":"\"x"}]}"#).is_none(), "an escape");
        assert!(
            find(r#"{"rules":[{"a":{"b":1}}]}"#).is_none(),
            "a nested object"
        );
        assert!(find(r#"{"type":"forwardrules"}"#).is_none(), "no list");
        assert!(find(r#"{"rules":[{"a":"b"}"#).is_none(), "cut short");
        assert_eq!(
            scan_items(br#" ,{"a":"b"} , "#, 0, false).unwrap().0,
            [Item::Comma, Item::Rule { start: 2, end: 11 }, Item::Comma]
        );
    }
}
