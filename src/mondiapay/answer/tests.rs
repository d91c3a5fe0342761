use secrecy::ExposeSecret;

use super::*;
use crate::domain::NO_TOKEN_IN_ANSWER;

fn issued(status: u16, body: &str) -> UserToken {
    match read_answer(status, body.as_bytes()) {
        Answer::Issued(token) => token,
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn accepts_the_documented_success_body_as_is() {
    let token = issued(
        200,
        r#"{"access_token":"U12345","token_type":"bearer","expires_in":"43200","refresh_token":"R12345"}"#,
    );
    assert_eq!(token.access_token.expose_secret(), "U12345");
    assert_eq!(token.refresh_token.unwrap().expose_secret(), "R12345");
    assert_eq!(token.token_type, "bearer");
    assert_eq!(token.expires_in, 43_200);
    assert!(token.extra.is_empty());
}

#[test]
fn expires_in_may_be_a_number_a_string_or_missing() {
    let expires = |body: &str| issued(200, body).expires_in;
    assert_eq!(expires(r#"{"access_token":"U1","expires_in":3600}"#), 3600);
    assert_eq!(expires(r#"{"access_token":"U1","expires_in":" 60 "}"#), 60);
    assert_eq!(expires(r#"{"access_token":"U1","expires_in":"90.7"}"#), 90);
    assert_eq!(expires(r#"{"access_token":"U1"}"#), 43_200);
    assert_eq!(
        expires(r#"{"access_token":"U1","expires_in":null}"#),
        43_200
    );
    assert_eq!(
        expires(r#"{"access_token":"U1","expires_in":99999999999}"#),
        30 * 24 * 3600
    );
}

#[test]
fn a_token_with_an_unusable_expires_in_is_still_issued_for_twelve_hours() {
    for expires_in in [
        r#""soon""#,
        r#""""#,
        "-5",
        r#""-5""#,
        "-0.5",
        r#"{"seconds":1}"#,
        "[43200]",
        "true",
        r#""1e400""#,
    ] {
        let body = format!(r#"{{"access_token":"U1","expires_in":{expires_in}}}"#);
        let token = issued(200, &body);
        assert_eq!(token.expires_in, 43_200, "{expires_in}");
        assert_eq!(token.access_token.expose_secret(), "U1");
    }
}

#[test]
fn a_token_beside_an_error_is_a_token() {
    let token = issued(
        200,
        r#"{"access_token":"U1","error":"invalid_grant","status":"UNAUTHORIZED"}"#,
    );
    assert_eq!(token.access_token.expose_secret(), "U1");
    assert_eq!(issued(201, r#"{"access_token":"U2"}"#).expires_in, 43_200);
}

#[test]
fn a_success_answer_without_a_usable_token_is_final_for_the_code() {
    for body in [
        r#"{"token_type":"bearer"}"#,
        r#"{"access_token":""}"#,
        r#"{"access_token":12345}"#,
        r#"{"access_token":null,"status":"OK"}"#,
        "<html>maintenance</html>",
        r#"{"access_token": "U1""#,
        "[1,2]",
        "",
    ] {
        match read_answer(200, body.as_bytes()) {
            Answer::CodeRejected(error) => {
                assert_eq!(error.error, NO_TOKEN_IN_ANSWER, "{body}");
                assert!(error.is_no_token() && error.message.is_none());
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    match read_answer(200, br#"{"error":"invalid_client","message":"no"}"#) {
        Answer::CodeRejected(error) => assert_eq!(error.error, "invalid_client"),
        other => panic!("a 2xx is never a credentials fault: {other:?}"),
    }
}

#[test]
fn token_type_is_case_insensitive_and_unknown_fields_are_kept() {
    let token = issued(
        200,
        r#"{"access_token":"U1","token_type":"Bearer","scope":"subs","n":1}"#,
    );
    assert_eq!(token.token_type, "bearer");
    assert_eq!(token.extra["scope"], "subs");
    assert_eq!(token.extra["n"], 1);
    assert!(token.refresh_token.is_none());
}

/// An answer's class, with the error code it keeps: `code:invalid_grant`,
/// `credentials:UNAUTHORIZED`, `issued`, `unusable`.
fn verdict(status: u16, body: &str) -> String {
    match read_answer(status, body.as_bytes()) {
        Answer::Issued(_) => "issued".to_owned(),
        Answer::CodeRejected(e) => format!("code:{}", e.error),
        Answer::CredentialsRejected(e) => format!("credentials:{}", e.error),
        Answer::Unusable(_) => "unusable".to_owned(),
    }
}

/// Reads each `(status, body)` and asserts its verdict.
fn assert_verdicts(cases: &[(u16, &str, &str)]) {
    for &(status, body, expected) in cases {
        assert_eq!(verdict(status, body), expected, "{status} {body}");
    }
}

#[test]
fn error_shapes_and_classes() {
    assert_verdicts(&[
        (
            400,
            r#"{"error":"invalid_grant","error_description":"used"}"#,
            "code:invalid_grant",
        ),
        (
            400,
            r#"{"status":"BAD_REQUEST","error":"INVALID_PARAMETERS","message":"bad"}"#,
            "code:INVALID_PARAMETERS",
        ),
        (
            401,
            r#"{"status":"UNAUTHORIZED","error":"TOKEN_NOT_FOUND"}"#,
            "code:TOKEN_NOT_FOUND",
        ),
        (200, r#"{"error":"invalid_grant"}"#, "code:invalid_grant"),
        (
            401,
            r#"{"error":"invalid_client"}"#,
            "credentials:invalid_client",
        ),
        (
            400,
            r#"{"error":"invalid_client"}"#,
            "credentials:invalid_client",
        ),
        (
            401,
            r#"{"status":"UNAUTHORIZED","message":"bad client"}"#,
            "credentials:UNAUTHORIZED",
        ),
        (
            401,
            r#"{"error":"UNAUTHORIZED"}"#,
            "credentials:UNAUTHORIZED",
        ),
        (500, r#"{"error":"invalid_grant"}"#, "unusable"),
        (503, "", "unusable"),
        (429, r#"{"error":"slow_down"}"#, "unusable"),
        (302, "", "unusable"),
        (404, "<html>not found</html>", "unusable"),
        (400, r#"{"detail":"no code here"}"#, "unusable"),
    ]);
}

#[test]
fn a_wrong_token_url_answering_json_errors_burns_no_code() {
    // Spring's and other gateways' 404/405/415 bodies name an error, but not about the code.
    assert_verdicts(&[
        (
            404,
            r#"{"status":404,"error":"Not Found","path":"/v1/api/oauth/tokn"}"#,
            "unusable",
        ),
        (404, r#"{"error":"NOT_FOUND"}"#, "unusable"),
        (405, r#"{"error":"Method Not Allowed"}"#, "unusable"),
        (415, r#"{"error":"UNSUPPORTED_MEDIA_TYPE"}"#, "unusable"),
        // A credentials error still counts as one, whatever the status.
        (
            404,
            r#"{"error":"invalid_client"}"#,
            "credentials:invalid_client",
        ),
    ]);
}

#[test]
fn a_401_or_403_that_names_neither_grant_nor_code_blames_the_credentials() {
    assert_verdicts(&[
        (
            403,
            r#"{"status":"FORBIDDEN","error":"AUTHORIZATION_FAILED"}"#,
            "credentials:AUTHORIZATION_FAILED",
        ),
        (
            401,
            r#"{"status":"UNAUTHORIZED","error":"UNAUTHORIZED"}"#,
            "credentials:UNAUTHORIZED",
        ),
        (
            403,
            r#"{"error":"SOMETHING_NEW"}"#,
            "credentials:SOMETHING_NEW",
        ),
        (401, "", "credentials:UNAUTHORIZED"),
        (403, "<html>denied</html>", "credentials:FORBIDDEN"),
    ]);
    for named in [
        "invalid_grant",
        "TOKEN_NOT_FOUND",
        "token_expired",
        "TOKEN_CONTEXT_IS_NOT_VALID",
        "INVALID_PARAMETERS",
        "invalid_request",
    ] {
        for status in [401, 403] {
            let body = format!(r#"{{"error":"{named}"}}"#);
            assert_eq!(verdict(status, &body), format!("code:{named}"), "{status}");
        }
    }
}

#[test]
fn free_text_in_the_error_field_is_not_kept_as_an_error_code() {
    let long = format!(r#"{{"error":"{}"}}"#, "E".repeat(65));
    assert_verdicts(&[
        (
            400,
            r#"{"error":"Your code A123 is wrong, call +1-555-0100"}"#,
            "code:UNRECOGNISED_ERROR",
        ),
        (400, &long, "code:UNRECOGNISED_ERROR"),
        (400, r#"{"error":" invalid_grant "}"#, "code:invalid_grant"),
    ]);
}

#[test]
fn error_text_is_bounded() {
    let long = "x".repeat(5000);
    let body = format!(r#"{{"error":"invalid_grant","message":"{long}"}}"#);
    let Answer::CodeRejected(error) = read_answer(400, body.as_bytes()) else {
        panic!()
    };
    assert_eq!(error.message.unwrap().len(), 300);
}

#[test]
fn rfc_6749s_description_wins_over_a_message_and_a_success_status_names_no_error() {
    let body = r#"{"error":"invalid_grant","error_description":"used","message":"other"}"#;
    let Answer::CodeRejected(error) = read_answer(400, body.as_bytes()) else {
        panic!()
    };
    assert_eq!(error.message.as_deref(), Some("used"));
    // On a 2xx, `status` is no error class: without a token the answer names none.
    assert_verdicts(&[(200, r#"{"status":"OK"}"#, "code:NO_TOKEN_IN_ANSWER")]);
}
