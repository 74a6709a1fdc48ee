//! Query errors: each names the JSON path of the offending field.

/// What kind of failure a query met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The query JSON is malformed or invalid.
    Invalid,
    /// The query asks for something this build does not implement.
    NotSupported,
    /// The query ran over its time budget.
    Timeout,
    /// The query was cancelled.
    Cancelled,
    /// Storage failed while reading (I/O, corruption).
    Storage,
    /// A named thing (a saved cohort) does not exist.
    NotFound,
    /// The query is valid, but SQL cannot express one of its rules exactly
    /// (see [`crate::sql`]); the path names the field.
    NotTranslatable,
}

/// A query failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct QueryError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// JSON path of the offending field (`steps[2].event`), empty if none.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl QueryError {
    /// An invalid-input error at `path`.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        QueryError {
            kind: ErrorKind::Invalid,
            path: path.into(),
            message: message.into(),
        }
    }
    /// A not-supported error at `path`.
    pub fn unsupported(path: impl Into<String>, message: impl Into<String>) -> Self {
        QueryError {
            kind: ErrorKind::NotSupported,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl QueryError {
    /// A not-translatable error at `path` (see [`crate::sql`]).
    pub fn not_translatable(path: impl Into<String>, message: impl Into<String>) -> Self {
        QueryError {
            kind: ErrorKind::NotTranslatable,
            path: path.into(),
            message: format!("not translatable to SQL: {}", message.into()),
        }
    }
}

impl From<footprint_storage::Error> for QueryError {
    fn from(e: footprint_storage::Error) -> Self {
        QueryError {
            kind: ErrorKind::Storage,
            path: String::new(),
            message: e.to_string(),
        }
    }
}

/// Result alias of the query layer.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
