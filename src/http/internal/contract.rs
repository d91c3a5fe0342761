//! The internal API's contract (OpenAPI 3.1), generated from the routes the router serves and
//! the types they answer with. What no single route says lives here: the document's header, the
//! API key scheme, and the shape every error answer shares.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};

use super::views::Problem;

/// The security scheme's name; `/v1` operations require it.
const BEARER: &str = "bearer";

/// The document's header; the paths and schemas come from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "mondiapay-token-proxy internal API",
        description = "Exchange MondiaPay authorization codes exactly once and read the stored user tokens.\n\n\
            Served on the internal listener only. Every `/v1` operation needs `Authorization: Bearer <api key>`; \
            the operations routes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`) need no key. \
            Errors are `application/problem+json` (RFC 9457). Every answer carries `X-Request-Id` \
            (the caller's, if short and plain, else a new one) and `Cache-Control: no-store`. \
            Any request that takes longer than `internal.request_timeout_secs` is answered `408`."
    ),
    tags(
        (name = "tokens", description = "Exchange codes, read and delete stored tokens."),
        (name = "callbacks", description = "What the browser callbacks for an order ended in."),
        (name = "purchases", description = "Start purchases with MondiaPay and follow them to their callback."),
        (name = "subscriptions", description = "MondiaPay's Subscription Management for a user, with the token this service holds."),
        (name = "events", description = "MondiaPay's notifications of subscription events, as a feed read by cursor."),
        (name = "operations", description = "Health, readiness, metrics and this document; no API key."),
    ),
    components(schemas(Problem)),
)]
pub struct ApiDoc;

/// What every `/v1` operation shares: it needs the API key (`auth::admit` checks it for every
/// `/v1` route), so it may answer `401`; and it works on the store, so it may answer `503` when the
/// store is unavailable and `500` when a stored row cannot be read (unless the route says more).
pub fn v1(api: &mut Document) {
    for item in api.paths.paths.values_mut() {
        for operation in operations(item) {
            operation.security = Some(vec![SecurityRequirement::new(BEARER, [""; 0])]);
            let responses = &mut operation.responses.responses;
            responses.insert(
                "401".to_owned(),
                described("Missing or wrong API key (`unauthorized`)."),
            );
            responses
                .entry("503".to_owned())
                .or_insert_with(|| described("The store is unavailable (`store-unavailable`)."));
            responses.entry("500".to_owned()).or_insert_with(|| {
                described("A fault of this service, such as a stored row this version cannot read (`internal`); it is logged.")
            });
        }
    }
}

/// Completes the assembled document: the API key scheme, the license's SPDX identifier, the
/// `408` every route may answer (`layers.rs` puts each request under the listener's time
/// limit) unless the route says more, and the problem body and headers of every error answer
/// (`problem.rs` gives all of them).
pub fn complete(api: &mut Document) {
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(
            "One of the keys in `internal.api_keys`, as `Authorization: Bearer <api key>`.",
        ))
        .build();
    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    if let Some(license) = &mut api.info.license {
        license.identifier = Some(license.name.clone());
    }
    for item in api.paths.paths.values_mut() {
        for operation in operations(item) {
            let responses = &mut operation.responses.responses;
            responses.entry("408".to_owned()).or_insert_with(|| {
                described("Over `internal.request_timeout_secs` (`request-timeout`).")
            });
            for (status, response) in responses {
                if let RefOr::T(response) = response {
                    as_problem(status, response);
                }
            }
        }
    }
}

/// An error answer that names no body of its own is a problem; `401` says which scheme to use
/// and `503` when to come back.
fn as_problem(status: &str, response: &mut Response) {
    if !(status.starts_with('4') || status.starts_with('5')) || !response.content.is_empty() {
        return;
    }
    let body = Content::new(Some(Ref::from_schema_name("Problem")));
    response
        .content
        .insert("application/problem+json".to_owned(), RefOr::T(body));
    match status {
        "401" => {
            let scheme = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["Bearer"]));
            add_header(response, "WWW-Authenticate", scheme, "The scheme to use.");
        }
        "503" => {
            let seconds = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0));
            add_header(
                response,
                "Retry-After",
                seconds,
                "Seconds to wait before trying again.",
            );
        }
        _ => {}
    }
}

fn add_header(response: &mut Response, name: &str, schema: ObjectBuilder, description: &str) {
    let header = HeaderBuilder::new()
        .schema(Some(schema.build()))
        .description(Some(description))
        .build();
    response.headers.insert(name.to_owned(), RefOr::T(header));
}

fn described(description: &str) -> RefOr<Response> {
    RefOr::T(Response::new(description))
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
