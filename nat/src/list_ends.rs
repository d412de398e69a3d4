//! The prefix and the suffix two lists share: CloudStack re-sends whole lists in their order,
//! so a push changes a few elements between a long common prefix and suffix. The journal
//! records only the middle (`vr_agent::store::delta`), and conntrack looks up only the middle
//! for revoked flows ([`crate::revoked`]).

/// `(prefix, suffix)`: how many leading and trailing elements `old` and `new` share. They never
/// overlap: `prefix + suffix <= min(old.len(), new.len())`.
pub fn common_ends<T: PartialEq>(old: &[T], new: &[T]) -> (usize, usize) {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let room = old.len().min(new.len()) - prefix;
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    (prefix, suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_never_overlap() {
        assert_eq!(common_ends(&[1, 2, 3], &[1, 2, 3]), (3, 0));
        assert_eq!(common_ends(&[1, 2, 3], &[1, 9, 3]), (1, 1));
        assert_eq!(common_ends(&[1, 1], &[1, 1, 1]), (2, 0));
        assert_eq!(common_ends::<u8>(&[], &[1]), (0, 0));
        assert_eq!(common_ends(&[1, 2], &[0, 1, 2]), (0, 2));
    }
}
