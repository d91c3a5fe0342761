//! hyper answers a request it cannot read (a malformed head, a request line or headers over
//! its limits) by itself, with a bodiless `400`, `414` or `431` that carries none of our
//! headers. Those answers are swapped on the wire for the listener's own form (a page with the
//! security headers, or a problem), prepared once at start-up.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{StatusCode, header};
use axum::response::Response;

use crate::http::layers::REQUEST_ID;
use crate::http::request_id::new_request_id;
use crate::metrics::Metrics;

/// The statuses hyper answers with on its own.
const STATUSES: [StatusCode; 3] = [
    StatusCode::BAD_REQUEST,
    StatusCode::URI_TOO_LONG,
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
];

/// Stands for the support reference in a prepared answer; as long as a request id, so the
/// prepared `Content-Length` holds after the swap.
const PLACEHOLDER: &[u8] = b"SUPPORTREFERENCE";

pub struct BareAnswers {
    listener: &'static str,
    metrics: Arc<Metrics>,
    answers: Vec<(u16, Vec<u8>)>,
}

impl BareAnswers {
    /// Renders the listener's answer for each status hyper may send, as raw HTTP/1.1.
    pub async fn prepare(
        listener: &'static str,
        metrics: Arc<Metrics>,
        answer: impl Fn(StatusCode, &str) -> Response,
    ) -> Self {
        let placeholder = std::str::from_utf8(PLACEHOLDER).expect("ASCII");
        debug_assert_eq!(new_request_id().len(), PLACEHOLDER.len());
        let mut answers = Vec::new();
        for status in STATUSES {
            let (parts, body) = answer(status, placeholder).into_parts();
            let body = axum::body::to_bytes(body, 1024 * 1024)
                .await
                .unwrap_or_default();
            let mut raw = format!(
                "HTTP/1.1 {} {}\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            )
            .into_bytes();
            for (name, value) in &parts.headers {
                if [CONTENT_LENGTH, CONNECTION, REQUEST_ID].contains(name) {
                    continue;
                }
                raw.extend_from_slice(name.as_str().as_bytes());
                raw.extend_from_slice(b": ");
                raw.extend_from_slice(value.as_bytes());
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(format!("{REQUEST_ID}: {placeholder}\r\n").as_bytes());
            raw.extend_from_slice(
                format!(
                    "{CONNECTION}: close\r\n{CONTENT_LENGTH}: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            raw.extend_from_slice(&body);
            answers.push((status.as_u16(), raw));
        }
        Self {
            listener,
            metrics,
            answers,
        }
    }

    /// Our answer instead of `written`, if `written` is one of hyper's own: an error head
    /// without a `Content-Type` (every answer of the service has one).
    pub fn replacement(&self, written: &[u8]) -> Option<Bytes> {
        if !written.starts_with(b"HTTP/1.1 4") {
            return None;
        }
        let head_end = written.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = written[..head_end].to_ascii_lowercase();
        let named = |name: &header::HeaderName| {
            let mut line = b"\r\n".to_vec();
            line.extend_from_slice(name.as_str().as_bytes());
            line.push(b':');
            head.windows(line.len()).any(|w| w == line.as_slice())
        };
        if named(&header::CONTENT_TYPE) {
            return None;
        }
        let status: u16 = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
        let (_, prepared) = self.answers.iter().find(|(s, _)| *s == status)?;
        let id = new_request_id();
        tracing::info!(
            listener = self.listener,
            request_id = %id,
            status,
            "request refused before routing: malformed or over the limits"
        );
        self.metrics.http_request(self.listener, "unparsed", status);
        Some(Bytes::from(with_reference(prepared, id.as_bytes())))
    }
}

fn with_reference(prepared: &[u8], id: &[u8]) -> Vec<u8> {
    let mut out = prepared.to_vec();
    let mut at = 0;
    while let Some(found) = out[at..]
        .windows(PLACEHOLDER.len())
        .position(|w| w == PLACEHOLDER)
    {
        let start = at + found;
        out[start..start + PLACEHOLDER.len()].copy_from_slice(id);
        at = start + PLACEHOLDER.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_becomes_the_reference() {
        let prepared = b"x-request-id: SUPPORTREFERENCE\r\n\r\n<p>SUPPORTREFERENCE</p>";
        let out = with_reference(prepared, b"abcdefghijklmnop");
        assert_eq!(
            out,
            b"x-request-id: abcdefghijklmnop\r\n\r\n<p>abcdefghijklmnop</p>"
        );
    }
}
