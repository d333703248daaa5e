//! Why an evaluation has no answer, with OFREP's error codes.

/// Why a flag could not be evaluated; [`EvaluationError::code`] is OFREP's
/// `errorCode`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvaluationError {
    /// No flag has the requested key.
    #[error("no flag has this key; check it against the `flags:` section of lastmile.yaml")]
    FlagNotFound,
    /// The flag splits users by key and the context has none.
    #[error(
        "this flag splits users by `targetingKey`, but the context has none; send a stable user id as `targetingKey`"
    )]
    TargetingKeyMissing,
    /// The context is malformed.
    #[error("invalid evaluation context: {0}")]
    InvalidContext(String),
    /// Anything else (a flag definition that cannot be evaluated).
    #[error("{0}")]
    General(String),
}

impl EvaluationError {
    /// The OFREP error code: `FLAG_NOT_FOUND`, `TARGETING_KEY_MISSING`,
    /// `INVALID_CONTEXT` or `GENERAL`.
    pub fn code(&self) -> &'static str {
        match self {
            EvaluationError::FlagNotFound => "FLAG_NOT_FOUND",
            EvaluationError::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            EvaluationError::InvalidContext(_) => "INVALID_CONTEXT",
            EvaluationError::General(_) => "GENERAL",
        }
    }
}
