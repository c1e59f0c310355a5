//! JSON errors with the right status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipfs_accelerate::AcceleratorError;

/// An error answer: `{"error": {"message", "type", "code"}}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 405 | 408 | 413 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            503 => "unavailable_error",
            _ => "server_error",
        }
    }
}

impl From<AcceleratorError> for ApiError {
    fn from(err: AcceleratorError) -> Self {
        let status =
            StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, ipfs_accelerate::error_line(&err))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        // A 500 is our failure, and its message may name files, backends or
        // library internals: those go to the log, the client gets a short
        // line it can act on.
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("internal error answered as 500: {}", self.message);
            "internal server error (details are in the server's log)".to_owned()
        } else {
            self.message
        };
        let body = serde_json::json!({
            "error": {
                "message": message,
                "type": kind,
                "code": self.status.as_u16(),
            }
        });
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, String) {
        let response = err.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_500_does_not_leak_internals_but_a_400_says_why() {
        let (status, body) = body_of(ApiError::internal(
            "onnxruntime: /opt/models/secret/model.onnx: node 42 failed",
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !body.contains("secret") && !body.contains("onnxruntime"),
            "{body}"
        );
        assert!(body.contains("\"code\":500"), "{body}");
        let (status, body) = body_of(ApiError::bad_request("prompt is empty")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("prompt is empty"), "{body}");
    }
}
