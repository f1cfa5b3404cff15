//! NUL characters, which PostgreSQL cannot store in text: a request holding one got 500 from
//! PostgreSQL (and a device retried its alert for ever) where SQLite stored it.
//!
//! A log line from a damaged file (an SD card after a power cut) may well hold NULs, so in
//! a JSON body each `\u0000` becomes U+FFFD (`�`), on both engines alike, and the alert is
//! kept; a dashboard form's `%00` becomes `%EF%BF%BD` (U+FFFD) the same way. An id or name
//! in the path never holds one: `%00` there is a 400.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Refuses `%00` in the path and replaces `\u0000` in the (already read) body.
pub async fn replace_nul_characters(request: Request, next: Next) -> Response {
    if request.uri().path().contains("%00") {
        return ApiError::BadRequest(
            "the path holds a NUL character (%00): no id or name has one, check the URL".into(),
        )
        .into_response();
    }
    let (parts, body) = request.into_parts();
    // The body was read whole before (`read_whole_body`, within the limit): this only
    // takes the bytes back.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return ApiError::BadRequest(format!("cannot read the request body: {error}"))
                .into_response()
        }
    };
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| {
            value
                .as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    let replaced = if is_form {
        form_without_nul(&bytes)
    } else {
        without_escaped_nul(&bytes)
    };
    let body = match replaced {
        Some(replaced) => Body::from(replaced),
        None => Body::from(bytes),
    };
    next.run(Request::from_parts(parts, body)).await
}

/// The form text with every `%00` as `%EF%BF%BD`, or `None` when it has none.
fn form_without_nul(form: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(form).ok()?;
    text.contains("%00")
        .then(|| text.replace("%00", "%EF%BF%BD").into_bytes())
}

const NUL_ESCAPE: &[u8] = b"u0000";
const REPLACEMENT_ESCAPE: &[u8] = b"ufffd";

/// The JSON text with every `\u0000` escape as `\ufffd`, or `None` when it has none. An
/// escape is a `u0000` after an odd run of backslashes (after an even run, the backslashes
/// escape each other and `u0000` is plain text).
fn without_escaped_nul(json: &[u8]) -> Option<Vec<u8>> {
    let mut replaced: Option<Vec<u8>> = None;
    let mut index = 0;
    while index < json.len() {
        if json[index] != b'\\' {
            index += 1;
            continue;
        }
        let run_start = index;
        while index < json.len() && json[index] == b'\\' {
            index += 1;
        }
        let odd = (index - run_start) % 2 == 1;
        if odd && json[index..].starts_with(NUL_ESCAPE) {
            let text = replaced.get_or_insert_with(|| json.to_vec());
            text[index..index + NUL_ESCAPE.len()].copy_from_slice(REPLACEMENT_ESCAPE);
            index += NUL_ESCAPE.len();
        }
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_escaped_nuls_are_replaced() {
        let replace = |json: &str| {
            without_escaped_nul(json.as_bytes()).map(|text| String::from_utf8(text).unwrap())
        };
        assert_eq!(
            replace(r#"{"a":"x\u0000y"}"#).as_deref(),
            Some(r#"{"a":"x\ufffdy"}"#)
        );
        assert_eq!(
            replace(r#"["\\u0000"]"#),
            None,
            "an escaped backslash, then text"
        );
        assert_eq!(
            replace(r#"["\\\u0000"]"#).as_deref(),
            Some(r#"["\\\ufffd"]"#)
        );
        assert_eq!(replace(r#"["\u00001"]"#).as_deref(), Some(r#"["\ufffd1"]"#));
        assert_eq!(replace("plain"), None);
        assert_eq!(replace("\\"), None, "a trailing backslash");
        let parsed: serde_json::Value =
            serde_json::from_str(&replace(r#""\u0000""#).unwrap()).unwrap();
        assert_eq!(parsed, "\u{fffd}");
        assert_eq!(
            form_without_nul(b"name=a%00b").unwrap(),
            b"name=a%EF%BF%BDb"
        );
        assert_eq!(form_without_nul(b"name=a"), None);
    }
}
