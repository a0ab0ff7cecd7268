//! A refused or failed request, as the server answers it: the HTTP status and a message that
//! names the input and the problem.

use crate::error::GmuError;

/// Why a request failed, as the server answers it.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// 400: the request is wrong (the message names the input and the problem).
    BadRequest(String),
    /// 413: past a size limit.
    TooLarge(String),
    /// 503: the queue is full, or the server is shutting down (retry later).
    Busy(String),
    /// 500: the model failed on a valid request.
    Internal(String),
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::TooLarge(_) => 413,
            Refusal::Busy(_) => 503,
            Refusal::Internal(_) => 500,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Refusal::BadRequest(m) | Refusal::TooLarge(m) | Refusal::Busy(m) | Refusal::Internal(m) => m,
        }
    }
}

impl From<GmuError> for Refusal {
    fn from(e: GmuError) -> Refusal {
        match e {
            GmuError::InvalidParameter { .. } | GmuError::Data { .. } => Refusal::BadRequest(e.to_string()),
            other => Refusal::Internal(other.to_string()),
        }
    }
}
