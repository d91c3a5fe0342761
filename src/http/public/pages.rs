//! The pages a browser sees, rendered with minijinja (HTML autoescaping always on). The built-in
//! templates are compiled in; a file of the same name in `public.templates_dir` replaces one.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{AutoEscape, Environment, context};

use crate::domain::{NewCallback, OutcomeKind, UnavailableCause};

/// The built-in templates, compiled into the binary.
macro_rules! built_in {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../templates/", $name)))),*]
    };
}

const BUILT_IN: &[(&str, &str)] = built_in!(
    "base.html",
    "success.html",
    "purchase_failed.html",
    "code_rejected.html",
    "try_again.html",
    "bad_request.html",
    "not_found.html",
    "rate_limited.html",
    "link_expired.html",
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Success,
    PurchaseFailed,
    CodeRejected,
    TryAgain,
    BadRequest,
    NotFound,
    RateLimited,
    /// A callback naming a purchase that is unknown, expired or ended by another code (or none
    /// while `purchases.enforce` is on).
    LinkExpired,
}

impl Page {
    /// The result page of a recorded outcome and its status: where an outcome meets HTTP on
    /// the public listener.
    pub fn for_outcome(outcome: &NewCallback) -> (Self, StatusCode) {
        match (outcome.kind, outcome.cause) {
            (OutcomeKind::Succeeded, _) => (Page::Success, StatusCode::OK),
            (OutcomeKind::PurchaseFailed, _) => (Page::PurchaseFailed, StatusCode::OK),
            (OutcomeKind::CodeRejected, _) => (Page::CodeRejected, StatusCode::BAD_REQUEST),
            (OutcomeKind::Unavailable, Some(UnavailableCause::TimedOut)) => {
                (Page::TryAgain, StatusCode::GATEWAY_TIMEOUT)
            }
            (OutcomeKind::Unavailable, _) => (Page::TryAgain, StatusCode::BAD_GATEWAY),
        }
    }

    /// The page for a callback or result the service could not serve, and its status: `503`
    /// while it is briefly unable (its store out of reach), `500` for a fault of its own.
    pub fn for_failure(fault: bool) -> (Self, StatusCode) {
        let status = if fault {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (Page::TryAgain, status)
    }

    const ALL: [Page; 8] = [
        Page::Success,
        Page::PurchaseFailed,
        Page::CodeRejected,
        Page::TryAgain,
        Page::BadRequest,
        Page::NotFound,
        Page::RateLimited,
        Page::LinkExpired,
    ];

    fn template(self) -> &'static str {
        match self {
            Self::Success => "success.html",
            Self::PurchaseFailed => "purchase_failed.html",
            Self::CodeRejected => "code_rejected.html",
            Self::TryAgain => "try_again.html",
            Self::BadRequest => "bad_request.html",
            Self::NotFound => "not_found.html",
            Self::RateLimited => "rate_limited.html",
            Self::LinkExpired => "link_expired.html",
        }
    }
}

/// What a page may show. Never a token, a code, a secret, an upstream body or free text from
/// a query string (MondiaPay's `message` may be anyone's words: it is not shown).
#[derive(Debug, Default)]
pub struct PageFacts<'a> {
    pub reference: Option<&'a str>,
    pub support_reference: &'a str,
    /// Why a purchase failed or a code was rejected: a fixed sentence from
    /// [`crate::domain::wording`].
    pub reason: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
#[error("public.templates_dir: {template}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: String,
}

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Loads the templates and renders each once, so a broken override stops start-up rather
    /// than a user's page.
    pub fn new(templates_dir: Option<PathBuf>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_loader(move |name| {
            if let Some(dir) = &templates_dir {
                let path = dir.join(name);
                if path.is_file() {
                    return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                        minijinja::Error::new(minijinja::ErrorKind::TemplateNotFound, e.to_string())
                    });
                }
            }
            Ok(BUILT_IN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, source)| (*source).to_owned()))
        });
        let pages = Self { env };
        for page in Page::ALL {
            pages
                .try_render(
                    page,
                    &PageFacts {
                        support_reference: "check",
                        ..PageFacts::default()
                    },
                )
                .map_err(|error| TemplateError {
                    template: page.template().to_owned(),
                    reason: error.to_string(),
                })?;
        }
        Ok(pages)
    }

    /// The not-found page, with the request id as its support reference.
    pub fn not_found(&self, request_id: &str) -> Response {
        let facts = PageFacts {
            support_reference: request_id,
            ..PageFacts::default()
        };
        self.render(Page::NotFound, StatusCode::NOT_FOUND, &facts)
    }

    pub fn render(&self, page: Page, status: StatusCode, facts: &PageFacts<'_>) -> Response {
        match self.try_render(page, facts) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(error) => {
                tracing::error!(template = page.template(), %error, "a page template failed");
                (status, "Something went wrong. Please try again later.").into_response()
            }
        }
    }

    fn try_render(&self, page: Page, facts: &PageFacts<'_>) -> Result<String, minijinja::Error> {
        self.env.get_template(page.template())?.render(context! {
            reference => facts.reference.filter(|reference| is_plain_reference(reference)),
            support_reference => facts.support_reference,
            reason => facts.reason,
        })
    }
}

/// Whether a `ref` is shown on a page: only an identifier, never a sentence. A `ref` comes from
/// the query string, so anyone can write one into a link ("Call +1 555 0100 and give your PIN");
/// shown on the service's page it would speak with the service's authority.
fn is_plain_reference(reference: &str) -> bool {
    (1..=MAX_SHOWN_REFERENCE_CHARS).contains(&reference.len())
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/#".contains(&b))
}

/// Longest `ref` a page shows.
const MAX_SHOWN_REFERENCE_CHARS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::wording;

    fn facts() -> PageFacts<'static> {
        PageFacts {
            reference: Some("ORDER-42"),
            support_reference: "req-1",
            reason: Some(wording::purchase_failed(Some("INSUFFICIENT_FUNDS"))),
        }
    }

    #[test]
    fn every_page_renders_and_escapes_what_it_shows() {
        let pages = Pages::new(None).unwrap();
        for page in Page::ALL {
            let html = pages.try_render(page, &facts()).unwrap();
            assert!(html.contains("ORDER-42"), "{page:?}");
            assert!(html.contains("req-1") && html.contains("<h1>"), "{page:?}");
        }
        let rendered = pages
            .env
            .render_str(
                "{{ text }}",
                context! { text => "<script>alert(1)</script>" },
            )
            .unwrap();
        assert_eq!(rendered, "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;");
        let failed = pages.try_render(Page::PurchaseFailed, &facts()).unwrap();
        assert!(failed.contains("mobile balance was too low"));
    }

    #[test]
    fn a_template_in_the_templates_dir_replaces_the_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("success.html"),
            "<p>Merci {{ reference }}</p>",
        )
        .unwrap();
        let pages = Pages::new(Some(dir.path().to_owned())).unwrap();
        assert_eq!(
            pages.try_render(Page::Success, &facts()).unwrap(),
            "<p>Merci ORDER-42</p>"
        );
        assert!(
            pages
                .try_render(Page::NotFound, &facts())
                .unwrap()
                .contains("Page not found")
        );
    }

    #[test]
    fn a_ref_is_shown_only_when_it_is_an_identifier() {
        let pages = Pages::new(None).unwrap();
        for (reference, shown) in [
            ("ORDER-42", true),
            ("shop:2026/11#7_a.b", true),
            ("Call +1 555 0100 and give your PIN", false),
            ("<b>x</b>", false),
            (&"x".repeat(65), false),
        ] {
            let facts = PageFacts {
                reference: Some(reference),
                ..facts()
            };
            let html = pages.try_render(Page::PurchaseFailed, &facts).unwrap();
            assert_eq!(html.contains("Order reference"), shown, "{reference}");
        }
    }

    #[test]
    fn a_broken_override_is_named_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("try_again.html"), "{% if %}").unwrap();
        let error = Pages::new(Some(dir.path().to_owned()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with("public.templates_dir: try_again.html"),
            "{error}"
        );
    }
}
