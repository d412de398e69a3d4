//! Errors of a push: every rejected push names the JSON path and the offending value.

use std::fmt;

/// One invalid value: `{path}: {reason} (value {value})`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// JSON path from the document root, e.g. `nat.port_forwards[3].private_ports`.
    pub path: String,
    /// The offending value as written (`<redacted>` for secrets), cut to
    /// [`MAX_QUOTE`](crate::excerpt::MAX_QUOTE) characters.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    pub fn new(
        path: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        FieldError {
            path: path.into(),
            value: crate::excerpt::display(&value),
            reason: reason.into(),
        }
    }

    /// Re-roots an error of a section validator (`port_forwards[0].x`) under `prefix` (`nat`).
    pub fn under(prefix: &str, path: &str, value: &str, reason: &str) -> Self {
        let path = if path.is_empty() {
            prefix.to_string()
        } else if path.starts_with('[') {
            format!("{prefix}{path}")
        } else {
            format!("{prefix}.{path}")
        };
        FieldError {
            path,
            value: crate::excerpt::truncate(value),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.path, self.reason)
        } else {
            write!(f, "{}: {} (value {})", self.path, self.reason, self.value)
        }
    }
}

/// A push that is rejected whole. Nothing of it is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid(pub Vec<FieldError>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Most errors one rejected push lists; the rest are counted in a last `(more)` entry. A
/// push of 100,000 bad rules must not hold (and answer, and keep in the history) 100,000 errors.
pub const MAX_ERRORS: usize = 20;

/// Path of the entry that counts the errors left out.
pub const MORE_PATH: &str = "(more)";

impl Invalid {
    /// The first [`MAX_ERRORS`] errors and, if there were more, one entry counting the rest.
    pub fn capped(errors: impl IntoIterator<Item = FieldError>) -> Invalid {
        let mut kept = Vec::new();
        let mut more = 0usize;
        for e in errors {
            // A part's own count, possibly re-rooted (`aggregate[1].(more)`).
            if e.path.ends_with(MORE_PATH) {
                more += e.value.parse::<usize>().unwrap_or(0);
            } else if kept.len() < MAX_ERRORS {
                kept.push(e);
            } else {
                more += 1;
            }
        }
        if more > 0 {
            kept.push(FieldError {
                path: MORE_PATH.into(),
                value: more.to_string(),
                reason: format!("and {more} more invalid values not listed"),
            });
        }
        Invalid(kept)
    }

    /// Adds the error `make` builds to `errs`, unless [`MAX_ERRORS`] are listed already: then
    /// it is only counted (and never built: 100,000 bad rules cost a counter, not 100,000
    /// strings).
    pub fn push_capped(errs: &mut Vec<FieldError>, make: impl FnOnce() -> FieldError) {
        if errs.len() < MAX_ERRORS {
            errs.push(make());
            return;
        }
        match errs.last_mut() {
            Some(last) if last.path == MORE_PATH => {
                let more = last.value.parse::<usize>().unwrap_or(0) + 1;
                last.value = more.to_string();
                last.reason = format!("and {more} more invalid values not listed");
            }
            _ => errs.push(FieldError {
                path: MORE_PATH.into(),
                value: "1".into(),
                reason: "and 1 more invalid values not listed".into(),
            }),
        }
    }

    /// How many invalid values there were, those left out included.
    pub fn total(&self) -> usize {
        self.0
            .iter()
            .map(|e| match e.path.ends_with(MORE_PATH) {
                true => e.value.parse().unwrap_or(1),
                false => 1,
            })
            .sum()
    }
}

impl From<FieldError> for Invalid {
    fn from(e: FieldError) -> Self {
        Invalid(vec![e])
    }
}

/// Lifts a section validator's errors (`vr_nat::FieldError` and friends) under a prefix.
#[macro_export]
macro_rules! lift_errors {
    ($prefix:expr, $errs:expr) => {
        $errs
            .into_iter()
            .map(|e| $crate::error::FieldError::under($prefix, &e.path, &e.value, &e.reason))
            .collect::<Vec<_>>()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_capped_and_counted() {
        let many = (0..100_000).map(|i| FieldError::new(format!("r[{i}]"), i, "bad"));
        let inv = Invalid::capped(many);
        assert_eq!(inv.0.len(), MAX_ERRORS + 1);
        assert_eq!(inv.total(), 100_000);
        assert_eq!(
            inv.0[MAX_ERRORS].reason,
            "and 99980 more invalid values not listed"
        );
        // Capping again (an aggregate of capped parts) keeps the count.
        let again = Invalid::capped(inv.0.clone().into_iter().chain(inv.0.clone()));
        assert_eq!(again.total(), 200_000);
        assert_eq!(Invalid::capped([FieldError::new("a", 1, "x")]).0.len(), 1);
        let mut errs = Vec::new();
        for i in 0..1000 {
            Invalid::push_capped(&mut errs, || FieldError::new(format!("r[{i}]"), i, "bad"));
        }
        assert_eq!(errs.len(), MAX_ERRORS + 1);
        assert_eq!(Invalid(errs).total(), 1000);
    }

    #[test]
    fn quoted_values_are_cut() {
        let e = FieldError::new("d", "e".repeat(10 << 20), "bad");
        assert_eq!(e.value.chars().count(), crate::excerpt::MAX_QUOTE);
        let e = FieldError::under("nat", "x", &"1".repeat(1000), "bad");
        assert!(e.value.ends_with("..."));
    }
}
