use crate::Limits;
use crate::val::{Obj, Val};
use faultline_model::{AttrValue, Attributes, Level, NewEntry, format_rfc3339_micros};
use serde::Serialize;

/// Attribute under which a replaced out-of-range timestamp is kept.
pub const ORIGINAL_TIMESTAMP_ATTR: &str = "faultline.original_timestamp";

/// Who is sending, resolved from the token, and when.
#[derive(Debug, Clone)]
pub struct DecodeContext<'a> {
    pub project: &'a str,
    /// The token's service: the default for entries without one, and the only
    /// service an entry may name. `None` (admin senders): any service, and
    /// every entry must name one.
    pub service: Option<&'a str>,
    /// Receive time, µs since the epoch.
    pub now: i64,
    pub limits: &'a Limits,
}

/// One problem with one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryError {
    /// Position of the entry in the request (0-based).
    pub index: usize,
    pub field: String,
    pub reason: String,
}

/// Why a request body was rejected. Nothing of a rejected body is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("malformed json")]
    Malformed { index: usize, detail: String },
    #[error("empty body")]
    Empty,
    #[error("too many entries")]
    TooManyEntries { limit: usize },
    #[error("invalid entries")]
    Invalid(Vec<EntryError>),
    #[error("service not allowed for this token")]
    ServiceMismatch {
        index: usize,
        service: String,
        allowed: String,
    },
}

/// At most this many entry errors are reported back.
const MAX_REPORTED_ERRORS: usize = 100;

/// Decodes and validates a whole body (already decompressed and within the
/// size limit).
pub fn decode_body(body: &[u8], ctx: &DecodeContext<'_>) -> Result<Vec<NewEntry>, IngestError> {
    let values = split_values(body, ctx.limits.max_entries)?;
    if values.is_empty() {
        return Err(IngestError::Empty);
    }
    let mut out = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        match decode_entry(index, value, ctx, &mut errors) {
            Ok(Some(e)) => out.push(e),
            Ok(None) => {}
            Err(mismatch) => return Err(mismatch),
        }
        if errors.len() >= MAX_REPORTED_ERRORS {
            break;
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(IngestError::Invalid(errors))
    }
}

/// Splits the body into entry values: an array's elements, or a stream of
/// whitespace/newline-separated objects (one object or NDJSON).
///
/// The body's UTF-8 is checked once, which is cheaper than serde_json's
/// check of every string read from bytes; a body that is not UTF-8 is read
/// from bytes, so the error names the entry as before.
fn split_values(body: &[u8], max_entries: usize) -> Result<Vec<Val<'_>>, IngestError> {
    match std::str::from_utf8(body) {
        Ok(text) => split(
            body,
            || serde_json::from_str(text),
            || serde_json::Deserializer::from_str(text).into_iter::<Val<'_>>(),
            max_entries,
        ),
        Err(_) => split(
            body,
            || serde_json::from_slice(body),
            || serde_json::Deserializer::from_slice(body).into_iter::<Val<'_>>(),
            max_entries,
        ),
    }
}

fn split<'a, S: Iterator<Item = serde_json::Result<Val<'a>>>>(
    body: &[u8],
    whole: impl FnOnce() -> serde_json::Result<Val<'a>>,
    stream: impl FnOnce() -> S,
    max_entries: usize,
) -> Result<Vec<Val<'a>>, IngestError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let v: Val<'_> = whole().map_err(|e| IngestError::Malformed {
            index: 0,
            detail: e.to_string(),
        })?;
        let Val::Array(items) = v else {
            unreachable!("a body starting with '[' that parses is an array")
        };
        if items.len() > max_entries {
            return Err(IngestError::TooManyEntries { limit: max_entries });
        }
        return Ok(items);
    }
    let mut out = Vec::new();
    for (index, item) in stream().enumerate() {
        let v = item.map_err(|e| IngestError::Malformed {
            index,
            detail: e.to_string(),
        })?;
        if out.len() == max_entries {
            return Err(IngestError::TooManyEntries { limit: max_entries });
        }
        out.push(v);
    }
    Ok(out)
}

fn err(errors: &mut Vec<EntryError>, index: usize, field: &str, reason: impl Into<String>) {
    errors.push(EntryError {
        index,
        field: field.to_string(),
        reason: reason.into(),
    });
}

/// Decodes one entry. Field problems go to `errors` (and `Ok(None)`); a
/// service the token may not write is fatal for the request.
fn decode_entry(
    index: usize,
    value: Val<'_>,
    ctx: &DecodeContext<'_>,
    errors: &mut Vec<EntryError>,
) -> Result<Option<NewEntry>, IngestError> {
    let limits = ctx.limits;
    let Val::Object(mut obj) = value else {
        err(errors, index, "", "entry must be a JSON object");
        return Ok(None);
    };
    let before = errors.len();

    let service = match take_alias(&mut obj, &["service", "service_name"]) {
        None => match ctx.service {
            Some(s) => s.to_string(),
            None => {
                err(
                    errors,
                    index,
                    "service",
                    "is required when sending with an admin token",
                );
                String::new()
            }
        },
        Some((field, Val::String(s))) => {
            if s.is_empty() {
                err(errors, index, field, "must not be empty");
            } else if let Some(allowed) = ctx.service
                && s != allowed
            {
                return Err(IngestError::ServiceMismatch {
                    index,
                    service: s.into_owned(),
                    allowed: allowed.to_string(),
                });
            } else {
                check_name(errors, index, field, &s, limits);
            }
            s.into_owned()
        }
        Some((field, _)) => {
            err(errors, index, field, "must be a string");
            String::new()
        }
    };

    let level = match take_alias(&mut obj, &["level", "severity"]) {
        None => Level::Info,
        Some((_, Val::String(s))) => {
            s.parse()
                .unwrap_or_else(|e: faultline_model::ParseLevelError| {
                    err(errors, index, "level", e.to_string());
                    Level::Info
                })
        }
        Some((_, Val::Number(n))) => match n.as_i64().and_then(Level::from_syslog) {
            Some(l) => l,
            None => {
                err(
                    errors,
                    index,
                    "level",
                    "numeric level must be a syslog severity 0-7",
                );
                Level::Info
            }
        },
        Some(_) => {
            err(
                errors,
                index,
                "level",
                "must be a string or a syslog severity number",
            );
            Level::Info
        }
    };

    let message = match take_alias(&mut obj, &["message", "msg"]) {
        None => {
            err(errors, index, "message", "is required");
            String::new()
        }
        Some((field, Val::String(s))) => {
            if s.is_empty() {
                err(errors, index, field, "must not be empty");
            } else if s.len() > limits.max_message_bytes {
                err(
                    errors,
                    index,
                    field,
                    format!(
                        "is {} bytes, the limit is {}",
                        s.len(),
                        limits.max_message_bytes
                    ),
                );
            }
            s.into_owned()
        }
        Some((field, _)) => {
            err(errors, index, field, "must be a string");
            String::new()
        }
    };

    let mut tags = Vec::new();
    if let Some((field, v)) = take_alias(&mut obj, &["tag"]) {
        match v {
            Val::String(s) => tags.push(s.into_owned()),
            _ => err(errors, index, field, "must be a string"),
        }
    }
    if let Some((field, v)) = take_alias(&mut obj, &["tags"]) {
        match v {
            Val::String(s) => tags.push(s.into_owned()),
            Val::Array(items) => {
                for item in items {
                    match item {
                        Val::String(s) => tags.push(s.into_owned()),
                        _ => {
                            err(errors, index, field, "must be an array of strings");
                            break;
                        }
                    }
                }
            }
            _ => err(
                errors,
                index,
                field,
                "must be a string or an array of strings",
            ),
        }
    }
    if tags.len() > limits.max_tags {
        err(
            errors,
            index,
            "tags",
            format!("has {} tags, the limit is {}", tags.len(), limits.max_tags),
        );
    }
    for t in &tags {
        check_name(errors, index, "tags", t, limits);
    }
    tags.sort();
    tags.dedup();

    let mut attributes = Attributes::new();
    let mut timestamp = ctx.now;
    match take_alias(&mut obj, &["timestamp", "time", "ts"]) {
        None => {}
        Some((field, v)) => match parse_timestamp(&v) {
            Some(ts) => {
                let future = ts - ctx.now > limits.max_future_secs.saturating_mul(1_000_000);
                let past = ctx.now - ts > limits.max_past_secs.saturating_mul(1_000_000);
                if future || past {
                    attributes.insert(
                        ORIGINAL_TIMESTAMP_ATTR.to_string(),
                        AttrValue::Str(format_rfc3339_micros(ts)),
                    );
                } else {
                    timestamp = ts;
                }
            }
            None => err(
                errors,
                index,
                field,
                "must be an RFC 3339 string or epoch seconds/milliseconds",
            ),
        },
    }

    let host = match take_alias(&mut obj, &["host", "hostname"]) {
        None => None,
        Some((field, Val::String(s))) => {
            check_name(errors, index, field, &s, limits);
            Some(s.into_owned())
        }
        Some((field, _)) => {
            err(errors, index, field, "must be a string");
            None
        }
    };

    let trace_id = take_hex_id(&mut obj, "trace_id", 32, index, errors);
    let span_id = take_hex_id(&mut obj, "span_id", 16, index, errors);

    let mut user_attrs = 0usize;
    if let Some((field, v)) = take_alias(&mut obj, &["attributes", "attrs"]) {
        match v {
            Val::Object(map) => {
                for (k, v) in map {
                    add_attribute(
                        errors,
                        index,
                        Some(field),
                        k.into_owned(),
                        v,
                        &mut attributes,
                        limits,
                    );
                    user_attrs += 1;
                }
            }
            _ => err(
                errors,
                index,
                field,
                "must be an object of strings, numbers and bools",
            ),
        }
    }
    // Remaining top-level fields are kept as attributes, as log shippers
    // send arbitrary JSON fields.
    for (k, v) in obj {
        add_attribute(
            errors,
            index,
            None,
            k.into_owned(),
            v,
            &mut attributes,
            limits,
        );
        user_attrs += 1;
    }
    if user_attrs > limits.max_attributes {
        err(
            errors,
            index,
            "attributes",
            format!(
                "has {} attributes, the limit is {}",
                user_attrs, limits.max_attributes
            ),
        );
    }

    if errors.len() > before {
        return Ok(None);
    }
    Ok(Some(NewEntry {
        project: ctx.project.to_string(),
        service,
        level,
        message,
        tags,
        timestamp,
        received_at: ctx.now,
        host,
        attributes,
        trace_id,
        span_id,
    }))
}

/// Removes the first present, non-null alias; returns which name it had.
/// Removes every field named by one of `names` and returns the first name
/// (in `names` order) with a non-null value; a key written twice counts with
/// its last value, as in other JSON decoders.
fn take_alias<'f, 'de>(obj: &mut Obj<'de>, names: &[&'f str]) -> Option<(&'f str, Val<'de>)> {
    let mut found = None;
    for name in names {
        let mut last = None;
        let mut i = 0;
        while i < obj.len() {
            if obj[i].0 == *name {
                last = Some(obj.remove(i).1);
            } else {
                i += 1;
            }
        }
        if let Some(v) = last
            && !v.is_null()
            && found.is_none()
        {
            found = Some((*name, v));
        }
    }
    found
}

fn check_name(errors: &mut Vec<EntryError>, index: usize, field: &str, s: &str, limits: &Limits) {
    if let Some(reason) = name_problem(s, limits) {
        err(errors, index, field, reason);
    }
}

/// What is wrong with a name (service, tag, host, attribute key), if
/// anything.
fn name_problem(s: &str, limits: &Limits) -> Option<String> {
    if s.len() > limits.max_name_bytes {
        Some(format!(
            "{} bytes is longer than the limit of {}",
            s.len(),
            limits.max_name_bytes
        ))
    } else if s.is_empty() {
        Some("must not be empty".into())
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

/// Adds one attribute; `object` is the field holding it (`attributes`…),
/// None for a top-level field. Its path in error messages is built only
/// when there is an error.
fn add_attribute(
    errors: &mut Vec<EntryError>,
    index: usize,
    object: Option<&str>,
    key: String,
    v: Val<'_>,
    attributes: &mut Attributes,
    limits: &Limits,
) {
    let path = |key: &str| match object {
        Some(o) => format!("{o}.{key}"),
        None => key.to_owned(),
    };
    if let Some(reason) = name_problem(&key, limits) {
        err(errors, index, &path(&key), reason);
    }
    let value = match v {
        Val::Null => return,
        Val::Bool(b) => AttrValue::Bool(b),
        Val::Number(n) => match n.as_i64() {
            Some(i) => AttrValue::Int(i),
            None => AttrValue::Float(n.as_f64()),
        },
        Val::String(s) => {
            if s.len() > limits.max_attribute_value_bytes {
                err(
                    errors,
                    index,
                    &path(&key),
                    format!(
                        "value is {} bytes, the limit is {}",
                        s.len(),
                        limits.max_attribute_value_bytes
                    ),
                );
            }
            AttrValue::Str(s.into_owned())
        }
        Val::Array(_) | Val::Object(_) => {
            err(
                errors,
                index,
                &path(&key),
                "attributes must be strings, numbers or bools (nested values are not supported)",
            );
            return;
        }
    };
    attributes.insert(key, value);
}

fn take_hex_id(
    obj: &mut Obj<'_>,
    field: &'static str,
    len: usize,
    index: usize,
    errors: &mut Vec<EntryError>,
) -> Option<String> {
    match take_alias(obj, &[field])? {
        (_, Val::String(s)) => {
            if s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                Some(s.to_ascii_lowercase())
            } else {
                err(errors, index, field, format!("must be {len} hex digits"));
                None
            }
        }
        _ => {
            err(
                errors,
                index,
                field,
                format!("must be a string of {len} hex digits"),
            );
            None
        }
    }
}

/// RFC 3339 text, or an epoch number (as number or digits) whose magnitude
/// tells the unit: seconds, milliseconds, microseconds or nanoseconds.
fn parse_timestamp(v: &Val<'_>) -> Option<i64> {
    match v {
        Val::String(s) => faultline_model::parse_rfc3339_micros(s)
            .or_else(|| s.trim().parse::<f64>().ok().and_then(epoch_to_micros)),
        Val::Number(n) => epoch_to_micros(n.as_f64()),
        _ => None,
    }
}

fn epoch_to_micros(x: f64) -> Option<i64> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let micros = if x < 1e11 {
        x * 1e6
    } else if x < 1e14 {
        x * 1e3
    } else if x < 1e17 {
        x
    } else {
        x / 1e3
    };
    if micros > 9.0e18 {
        return None;
    }
    Some(micros as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000;

    fn decode(body: &str) -> Result<Vec<NewEntry>, IngestError> {
        let limits = Limits::default();
        decode_with(body, &limits)
    }

    fn decode_with(body: &str, limits: &Limits) -> Result<Vec<NewEntry>, IngestError> {
        decode_body(
            body.as_bytes(),
            &DecodeContext {
                project: "proj",
                service: Some("api"),
                now: NOW,
                limits,
            },
        )
    }

    fn invalid(body: &str) -> Vec<EntryError> {
        match decode(body) {
            Err(IngestError::Invalid(e)) => e,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn object_array_and_ndjson_decode_alike() {
        let one = decode(r#"{"message":"a","level":"ERROR"}"#).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].level, Level::Error);
        assert_eq!(one[0].service, "api");
        assert_eq!(one[0].project, "proj");
        assert_eq!(one[0].timestamp, NOW);
        let arr = decode(r#"[{"message":"a"},{"message":"b"}]"#).unwrap();
        assert_eq!(arr.len(), 2);
        let nd =
            decode("{\"message\":\"a\"}\n{\"message\":\"b\"}\n\n{\"message\":\"c\"}\n").unwrap();
        assert_eq!(
            nd.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn duplicate_keys_and_null_aliases() {
        let e = &decode(
            r#"{"message":null,"msg":"first","msg":"second","service":"api","service_name":"web",
                "level":null,"severity":"warn","host":"h1","host":"h2","z":1,"a":null,"b":"x"}"#,
        )
        .unwrap()[0];
        // The last value of a key; the first alias (in order) that is not null.
        assert_eq!(e.message, "second");
        assert_eq!(e.service, "api");
        assert_eq!(e.level, Level::Warn);
        assert_eq!(e.host.as_deref(), Some("h2"));
        // Other fields are attributes, nulls dropped.
        assert_eq!(e.attributes.len(), 2);
        assert_eq!(e.attributes["z"], AttrValue::Int(1));
        assert_eq!(e.attributes["b"], AttrValue::Str("x".into()));
    }

    #[test]
    fn all_fields_and_aliases() {
        let e = &decode(
            r#"{"service_name":"api","level":3,"message":"boom","tag":"db","tags":["x","db"],
                "timestamp":"2023-11-14T22:13:20Z","host":"web-1","attributes":{"user":"bob","n":3,"ok":true,"f":1.5},
                "trace_id":"0123456789ABCDEF0123456789abcdef","span_id":"0123456789abcdef","extra":"kept"}"#,
        )
        .unwrap()[0];
        assert_eq!(e.level, Level::Error);
        assert_eq!(e.tags, ["db", "x"]);
        assert_eq!(e.timestamp, 1_700_000_000_000_000);
        assert_eq!(e.host.as_deref(), Some("web-1"));
        assert_eq!(e.attributes["user"], AttrValue::Str("bob".into()));
        assert_eq!(e.attributes["n"], AttrValue::Int(3));
        assert_eq!(e.attributes["ok"], AttrValue::Bool(true));
        assert_eq!(e.attributes["f"], AttrValue::Float(1.5));
        assert_eq!(e.attributes["extra"], AttrValue::Str("kept".into()));
        assert_eq!(
            e.trace_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn epoch_units_are_inferred() {
        for t in [
            "1700000000",
            "1700000000000",
            "1700000000000000",
            "1700000000000000000",
        ] {
            let e = &decode(&format!(r#"{{"message":"a","timestamp":{t}}}"#)).unwrap()[0];
            assert_eq!(e.timestamp, NOW, "{t}");
        }
        let e = &decode(r#"{"message":"a","timestamp":1699999999.5}"#).unwrap()[0];
        assert_eq!(e.timestamp, NOW - 500_000);
    }

    #[test]
    fn far_timestamps_are_replaced_and_kept_as_attribute() {
        let e = &decode(r#"{"message":"a","timestamp":"2999-01-01T00:00:00Z"}"#).unwrap()[0];
        assert_eq!(e.timestamp, NOW);
        assert_eq!(
            e.attributes[ORIGINAL_TIMESTAMP_ATTR],
            AttrValue::Str("2999-01-01T00:00:00.000000Z".into())
        );
        let e = &decode(r#"{"message":"a","timestamp":"1990-01-01T00:00:00Z"}"#).unwrap()[0];
        assert_eq!(e.timestamp, NOW);
    }

    #[test]
    fn every_bad_entry_is_named() {
        let errs = invalid(
            r#"[{"message":"ok"},{"level":"loud","message":1},{"message":"x","attributes":{"a":{"b":1}}},7]"#,
        );
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.index, e.field.as_str())).collect();
        assert_eq!(
            got,
            [(1, "level"), (1, "message"), (2, "attributes.a"), (3, "")]
        );
    }

    #[test]
    fn wrong_types_and_missing_message() {
        let errs = invalid(r#"{"level":"info"}"#);
        assert_eq!(errs[0].field, "message");
        let errs = invalid(r#"{"message":"a","tags":[1]}"#);
        assert_eq!(errs[0].field, "tags");
        let errs = invalid(r#"{"message":"a","timestamp":"soon"}"#);
        assert_eq!(errs[0].field, "timestamp");
        let errs = invalid(r#"{"message":"a","trace_id":"xyz"}"#);
        assert_eq!(errs[0].field, "trace_id");
        let errs = invalid(r#"{"message":"a","level":99}"#);
        assert_eq!(errs[0].field, "level");
    }

    #[test]
    fn malformed_json_names_the_entry() {
        match decode("{\"message\":\"a\"}\n{\"message\":") {
            Err(IngestError::Malformed { index, .. }) => assert_eq!(index, 1),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode("[{\"message\":\"a\"},"),
            Err(IngestError::Malformed { .. })
        ));
        assert!(matches!(decode("   "), Err(IngestError::Empty)));
        assert!(matches!(decode("[]"), Err(IngestError::Empty)));
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let body = b"{\"message\":\"a\xff\xfe\"}";
        let limits = Limits::default();
        let r = decode_body(
            body,
            &DecodeContext {
                project: "p",
                service: Some("api"),
                now: NOW,
                limits: &limits,
            },
        );
        assert!(matches!(r, Err(IngestError::Malformed { .. })), "{r:?}");
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_entries: 2,
            max_message_bytes: 5,
            max_attributes: 2,
            max_tags: 1,
            ..Limits::default()
        };
        assert!(matches!(
            decode_with(
                r#"[{"message":"a"},{"message":"a"},{"message":"a"}]"#,
                &limits
            ),
            Err(IngestError::TooManyEntries { limit: 2 })
        ));
        assert!(matches!(
            decode_with(
                "{\"message\":\"a\"}\n{\"message\":\"a\"}\n{\"message\":\"a\"}",
                &limits
            ),
            Err(IngestError::TooManyEntries { limit: 2 })
        ));
        let Err(IngestError::Invalid(errs)) = decode_with(
            r#"{"message":"toolong","tags":["a","b"],"attributes":{"a":1,"b":2,"c":3}}"#,
            &limits,
        ) else {
            panic!()
        };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["message", "tags", "attributes"]);
    }

    #[test]
    fn admin_senders_name_any_service() {
        let limits = Limits::default();
        let ctx = DecodeContext {
            project: "p",
            service: None,
            now: NOW,
            limits: &limits,
        };
        let e = decode_body(br#"{"message":"a","service":"cron"}"#, &ctx).unwrap();
        assert_eq!(e[0].service, "cron");
        assert!(matches!(
            decode_body(br#"{"message":"a"}"#, &ctx),
            Err(IngestError::Invalid(errs)) if errs[0].field == "service"
        ));
    }

    #[test]
    fn other_service_is_a_mismatch() {
        assert!(matches!(
            decode(r#"[{"message":"a"},{"message":"a","service":"web"}]"#),
            Err(IngestError::ServiceMismatch { index: 1, .. })
        ));
    }
}
