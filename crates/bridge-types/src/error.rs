//! OpenAI-shaped error bodies: `{"error":{"message","type","code","param"}}`.
//!
//! Every error the bridge itself produces goes through [`ApiError`], so clients of the OpenAI SDKs parse
//! it like an upstream error. Messages never contain credentials.

use serde::Serialize;

/// The `type` field of an OpenAI error, as a closed set (also used as a low-cardinality metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    NotFoundError,
    RateLimitError,
    ServerError,
    UpstreamError,
    Timeout,
}

impl ErrorKind {
    /// The wire and metric name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequestError => "invalid_request_error",
            ErrorKind::AuthenticationError => "authentication_error",
            ErrorKind::PermissionError => "permission_error",
            ErrorKind::NotFoundError => "not_found_error",
            ErrorKind::RateLimitError => "rate_limit_error",
            ErrorKind::ServerError => "server_error",
            ErrorKind::UpstreamError => "upstream_error",
            ErrorKind::Timeout => "timeout",
        }
    }
}

/// One OpenAI-shaped error with the HTTP status it travels with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: ErrorKind,
    pub message: String,
    pub code: Option<String>,
    pub param: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: ErrorKind,
    code: Option<&'a str>,
    param: Option<&'a str>,
}

impl ApiError {
    /// A new error without code or param.
    pub fn new(status: u16, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), code: None, param: None }
    }

    /// Sets the machine-readable `code`.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets the offending parameter (a JSON path such as `input[3].content`).
    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The JSON body `{"error":{...}}`.
    pub fn to_json(&self) -> String {
        let body = Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                code: self.code.as_deref(),
                param: self.param.as_deref(),
            },
        };
        serde_json::to_string(&body).unwrap_or_else(|_| {
            String::from(r#"{"error":{"message":"internal error","type":"server_error","code":null,"param":null}}"#)
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.kind.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}
