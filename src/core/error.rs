//! Errors of the domain core. They know no HTTP: each protocol adapter maps them once,
//! at its edge (SCIM: `scim::error`).

/// What went wrong in a domain operation.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0} not found")]
    NotFound(String),
    /// A value that must be unique is taken (RFC 7644 `uniqueness`).
    #[error("{0}")]
    Uniqueness(String),
    /// A value is missing, of the wrong type or otherwise unacceptable (`invalidValue`).
    #[error("{0}")]
    InvalidValue(String),
    /// The filter names an unknown attribute or compares in a way the attribute forbids.
    #[error("{0}")]
    InvalidFilter(String),
    /// A PATCH path that is malformed or names no attribute of the schema (`invalidPath`).
    #[error("{0}")]
    InvalidPath(String),
    /// A PATCH path with a filter that matched nothing, or a remove without a path (`noTarget`).
    #[error("{0}")]
    NoTarget(String),
    /// An attempt to change a readOnly or immutable attribute (`mutability`).
    #[error("{0}")]
    Mutability(String),
    /// Structurally invalid request content (`invalidSyntax`).
    #[error("{0}")]
    InvalidSyntax(String),
    /// The caller's precondition (expected version) does not hold.
    #[error("resource version mismatch: {0}")]
    VersionMismatch(String),
    /// The caller may not do this (read-only token, wrong organization...).
    #[error("{0}")]
    Forbidden(String),
    /// A failure that is not the caller's doing (randomness, a secret that cannot be
    /// decrypted, a configuration fault). Its message is logged, never sent to clients.
    #[error("{0}")]
    Internal(String),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors from a storage backend, without the backend's types (as atuin's `DbError`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("a unique constraint was violated: {0}")]
    Unique(String),
    #[error("storage error: {0}")]
    Other(String),
    /// The database cannot be reached now (down, restarting, failing over, no connection
    /// within the pool's timeout): the request may be retried; nothing was acknowledged.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

/// Seconds a client is told to wait (`Retry-After`) when the database is unavailable.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

pub type CoreResult<T> = Result<T, CoreError>;

/// An error with its sources, joined (libraries' top-level messages are often vague).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
