//! Errors of a push: every rejected push names the JSON path and the offending value.

use std::fmt;

/// One invalid value: `{path}: {reason} (value {value})`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// JSON path from the document root, e.g. `nat.port_forwards[3].private_ports`.
    pub path: String,
    /// The offending value as written (`<redacted>` for secrets).
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
            value: value.to_string(),
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
            value: value.to_string(),
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
