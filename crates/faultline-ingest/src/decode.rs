use crate::Limits;
use crate::val::{Key, Obj, Val};
use faultline_model::{AttrValue, Attributes, Level, Name, NewEntry, format_rfc3339_micros};
use serde::Deserialize;
use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

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
///
/// Entries are decoded one by one as the JSON parser reaches them, so only
/// one entry's fields are held as JSON values at a time. A body that is not
/// well-formed JSON is rejected as malformed even when it has too many
/// entries, or an earlier entry was invalid or named another service.
pub fn decode_body(body: &[u8], ctx: &DecodeContext<'_>) -> Result<Vec<NewEntry>, IngestError> {
    let mut sink = Sink {
        ctx,
        names: Names {
            project: Name::from(ctx.project),
            service: ctx.service.map(Name::from),
        },
        index: 0,
        // About 300 bytes of JSON an entry: one allocation for most bodies.
        out: Vec::with_capacity((body.len() / 256).min(ctx.limits.max_entries).max(1)),
        errors: Vec::new(),
        mismatch: None,
    };
    // The body's UTF-8 is checked once, which is cheaper than serde_json's
    // check of every string read from bytes; a body that is not UTF-8 is
    // read from bytes, so the error names the entry as before.
    match std::str::from_utf8(body) {
        Ok(text) => sink.read(body, serde_json::de::StrRead::new(text))?,
        Err(_) => sink.read(body, serde_json::de::SliceRead::new(body))?,
    }
    if sink.index > ctx.limits.max_entries {
        return Err(IngestError::TooManyEntries {
            limit: ctx.limits.max_entries,
        });
    }
    if let Some(mismatch) = sink.mismatch {
        return Err(mismatch);
    }
    if sink.index == 0 {
        return Err(IngestError::Empty);
    }
    if sink.errors.is_empty() {
        Ok(sink.out)
    } else {
        Err(IngestError::Invalid(sink.errors))
    }
}

/// The project and the token's service as every entry of a request holds
/// them: cloning a short `Name` is a copy, building one from text cost
/// more (a byte copy the CPU then reads back as words).
struct Names {
    project: Name,
    service: Option<Name>,
}

/// Where decoded entries go while the body is parsed.
struct Sink<'c, 'a> {
    ctx: &'c DecodeContext<'a>,
    /// The context's names, built once for all entries.
    names: Names,
    /// Entries seen so far (the index of the next one).
    index: usize,
    out: Vec<NewEntry>,
    errors: Vec<EntryError>,
    /// The first entry naming a service the token may not write.
    mismatch: Option<IngestError>,
}

impl Sink<'_, '_> {
    /// Parses the body: an array's elements, or a stream of
    /// whitespace/newline-separated objects (one object or NDJSON).
    fn read<'de, R: serde_json::de::Read<'de>>(
        &mut self,
        body: &[u8],
        read: R,
    ) -> Result<(), IngestError> {
        let mut de = serde_json::Deserializer::new(read);
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            let parsed =
                serde::Deserializer::deserialize_seq(&mut de, &mut *self).and_then(|()| de.end());
            return parsed.map_err(|e| self.malformed(e));
        }
        let mut stream = de.into_iter::<Fields<'de>>();
        for item in &mut stream {
            let mut fields = item.map_err(|e| self.malformed(e))?;
            self.push(&mut fields);
        }
        Ok(())
    }

    /// Counts the next entry and decodes it, unless the request is already
    /// refused (the rest of the body is still parsed, to tell a malformed
    /// one).
    fn push(&mut self, fields: &mut Fields<'_>) {
        let index = self.index;
        self.index += 1;
        if index >= self.ctx.limits.max_entries
            || self.mismatch.is_some()
            || self.errors.len() >= MAX_REPORTED_ERRORS
        {
            return;
        }
        match decode_entry(index, fields, self.ctx, &self.names, &mut self.errors) {
            Ok(Some(e)) if self.errors.is_empty() => self.out.push(e),
            Ok(_) => {}
            Err(mismatch) => self.mismatch = Some(mismatch),
        }
    }

    /// A JSON error names the entry being read.
    fn malformed(&self, e: serde_json::Error) -> IngestError {
        IngestError::Malformed {
            index: self.index,
            detail: e.to_string(),
        }
    }
}

impl<'de> Visitor<'de> for &mut Sink<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of log entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut fields = Fields::new();
        while seq.next_element_seed(Fill(&mut fields))?.is_some() {
            self.push(&mut fields);
        }
        Ok(())
    }
}

/// Declares the top-level names with a meaning (every other field is an
/// attribute): a constant per name, its position in `KNOWN`, and
/// `known_slot` to find a key's position.
macro_rules! known_fields {
    ($($slot:ident = $name:literal),* $(,)?) => {
        const KNOWN: &[&str] = &[$($name),*];
        // `Fields::present` has a bit for each.
        const _: () = assert!(KNOWN.len() <= 32);
        known_fields!(@slots 0usize; $($slot)*);
        /// The position of a known top-level name in `KNOWN`.
        fn known_slot(key: &str) -> Option<usize> {
            match key {
                $($name => Some($slot),)*
                _ => None,
            }
        }
    };
    (@slots $n:expr; $slot:ident $($rest:ident)*) => {
        const $slot: usize = $n;
        known_fields!(@slots $n + 1; $($rest)*);
    };
    (@slots $n:expr;) => {};
}

known_fields! {
    SERVICE = "service",
    SERVICE_NAME = "service_name",
    LEVEL = "level",
    SEVERITY = "severity",
    MESSAGE = "message",
    MSG = "msg",
    TAG = "tag",
    TAGS = "tags",
    TIMESTAMP = "timestamp",
    TIME = "time",
    TS = "ts",
    HOST = "host",
    HOSTNAME = "hostname",
    TRACE_ID = "trace_id",
    SPAN_ID = "span_id",
    ATTRIBUTES = "attributes",
    ATTRS = "attrs",
}

/// One entry as parsed: the last value of each known name, and the other
/// fields in the order they were written. `object` is false when the entry
/// is not a JSON object.
struct Fields<'de> {
    object: bool,
    /// Bit `i` is set when `known[i]` holds a value.
    present: u32,
    known: [Option<Val<'de>>; KNOWN.len()],
    rest: Obj<'de>,
}

impl<'de> Fields<'de> {
    fn new() -> Fields<'de> {
        Fields {
            object: false,
            present: 0,
            known: Default::default(),
            rest: Vec::new(),
        }
    }

    /// Empties it for the next entry (only the slots that hold a value).
    fn clear(&mut self) {
        self.object = false;
        while self.present != 0 {
            let slot = self.present.trailing_zeros() as usize;
            self.known[slot] = None;
            self.present &= self.present - 1;
        }
        self.rest.clear();
    }

    /// Takes every field at one of `slots` and returns the first name
    /// (in `slots` order) with a non-null value; a key written twice counted
    /// with its last value, as in other JSON decoders.
    fn take(&mut self, slots: &[usize]) -> Option<(&'static str, Val<'de>)> {
        // The value is moved out once, at the end: moving `Val`s through
        // temporaries in the loop cost more than the rest of the decode of
        // most fields.
        let mut found = None;
        for &slot in slots {
            if self.present & (1 << slot) == 0 {
                continue;
            }
            self.present &= !(1 << slot);
            if found.is_none() && !matches!(self.known[slot], None | Some(Val::Null)) {
                found = Some(slot);
            } else {
                self.known[slot] = None;
            }
        }
        let slot = found?;
        Some((KNOWN[slot], self.known[slot].take()?))
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = Fields::new();
        Fill(&mut fields).deserialize(d)?;
        Ok(fields)
    }
}

/// Parses one entry into a [`Fields`] in place (it is large to move).
struct Fill<'f, 'de>(&'f mut Fields<'de>);

impl<'de> DeserializeSeed<'de> for Fill<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.clear();
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a log entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let fields = self.0;
        fields.object = true;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: Val<'de> = map.next_value()?;
            match known_slot(&key.0) {
                Some(slot) => {
                    fields.known[slot] = Some(value);
                    fields.present |= 1 << slot;
                }
                None => fields.rest.push((key.0, value)),
            }
        }
        Ok(())
    }
    // Anything else is not an entry. Its values are still parsed in full
    // (not skipped), so a bad string or number in it is malformed JSON.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Val<'de>>()?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
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
    obj: &mut Fields<'_>,
    ctx: &DecodeContext<'_>,
    names: &Names,
    errors: &mut Vec<EntryError>,
) -> Result<Option<NewEntry>, IngestError> {
    let limits = ctx.limits;
    if !obj.object {
        err(errors, index, "", "entry must be a JSON object");
        return Ok(None);
    }
    let before = errors.len();

    let service = match obj.take(&[SERVICE, SERVICE_NAME]) {
        None => match &names.service {
            Some(s) => s.clone(),
            None => {
                err(
                    errors,
                    index,
                    "service",
                    "is required when sending with an admin token",
                );
                Name::default()
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
            match &names.service {
                Some(allowed) if *allowed == *s => allowed.clone(),
                _ => Name::from(s.as_ref()),
            }
        }
        Some((field, _)) => {
            err(errors, index, field, "must be a string");
            Name::default()
        }
    };

    let level = match obj.take(&[LEVEL, SEVERITY]) {
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

    let message = match obj.take(&[MESSAGE, MSG]) {
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
    if let Some((field, v)) = obj.take(&[TAG]) {
        match v {
            Val::String(s) => tags.push(Name::from(s.as_ref())),
            _ => err(errors, index, field, "must be a string"),
        }
    }
    if let Some((field, v)) = obj.take(&[TAGS]) {
        match v {
            Val::String(s) => tags.push(Name::from(s.as_ref())),
            Val::Array(items) => {
                tags.reserve_exact(items.len());
                for item in items {
                    match item {
                        Val::String(s) => tags.push(Name::from(s.as_ref())),
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
    match obj.take(&[TIMESTAMP, TIME, TS]) {
        None => {}
        Some((field, v)) => match parse_timestamp(&v) {
            Some(ts) => {
                let future = ts - ctx.now > limits.max_future_secs.saturating_mul(1_000_000);
                let past = ctx.now - ts > limits.max_past_secs.saturating_mul(1_000_000);
                if future || past {
                    attributes.insert(
                        Name::const_new(ORIGINAL_TIMESTAMP_ATTR),
                        AttrValue::Str(format_rfc3339_micros(ts).into()),
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

    let host = match obj.take(&[HOST, HOSTNAME]) {
        None => None,
        Some((field, Val::String(s))) => {
            check_name(errors, index, field, &s, limits);
            Some(Name::from(s.as_ref()))
        }
        Some((field, _)) => {
            err(errors, index, field, "must be a string");
            None
        }
    };

    let trace_id = take_hex_id(obj, TRACE_ID, 32, index, errors);
    let span_id = take_hex_id(obj, SPAN_ID, 16, index, errors);

    // The attributes are counted before any is added: an entry over the
    // limit is refused for that alone, and a huge object (a 10 MB body of
    // keys) costs no more than reading it.
    let attrs = obj.take(&[ATTRIBUTES, ATTRS]);
    let user_attrs = obj.rest.len()
        + match &attrs {
            Some((_, Val::Object(map))) => map.len(),
            _ => 0,
        };
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
    } else {
        attributes.reserve(user_attrs);
        match attrs {
            None => {}
            Some((field, Val::Object(map))) => {
                for (k, v) in map {
                    add_attribute(
                        errors,
                        index,
                        Some(field),
                        Name::from(k.as_ref()),
                        v,
                        &mut attributes,
                        limits,
                    );
                }
            }
            Some((field, _)) => err(
                errors,
                index,
                field,
                "must be an object of strings, numbers and bools",
            ),
        }
        // Remaining top-level fields are kept as attributes, as log
        // shippers send arbitrary JSON fields.
        for (k, v) in obj.rest.drain(..) {
            add_attribute(
                errors,
                index,
                None,
                Name::from(k.as_ref()),
                v,
                &mut attributes,
                limits,
            );
        }
    }

    if errors.len() > before {
        return Ok(None);
    }
    Ok(Some(NewEntry {
        project: names.project.clone(),
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
    } else if !s.bytes().all(|b| (0x20..0x7f).contains(&b)) && s.chars().any(char::is_control) {
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
    key: Name,
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
            AttrValue::Str(Name::from(s.as_ref()))
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
    obj: &mut Fields<'_>,
    slot: usize,
    len: usize,
    index: usize,
    errors: &mut Vec<EntryError>,
) -> Option<String> {
    let field = KNOWN[slot];
    match obj.take(&[slot])? {
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
    fn malformed_json_wins_over_entry_problems() {
        // The body is parsed to its end even after a bad entry, so a broken
        // body is always reported as such, naming the entry being read.
        for body in [
            r#"[{"message":"a"},{"message":"a","service":"web"},{"message":"#,
            r#"[{"level":"loud"},{"message":"a"},{"message":"#,
            "{\"message\":\"a\",\"service\":\"web\"}\n{\"message\":\"a\"}\n{\"message\":",
        ] {
            match decode(body) {
                Err(IngestError::Malformed { index, .. }) => assert_eq!(index, 2, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        // Malformed JSON inside a non-object entry, or after the entry
        // limit, is still malformed.
        for body in [
            r#"[{"message":"a"},["\ud800"]]"#,
            r#"[{"message":"a"},[1e400]]"#,
            "{\"message\":\"a\"}\n[\"\\ud800\"]",
        ] {
            assert!(
                matches!(decode(body), Err(IngestError::Malformed { index: 1, .. })),
                "{body}: {:?}",
                decode(body)
            );
        }
        let limits = Limits {
            max_entries: 1,
            ..Limits::default()
        };
        assert!(matches!(
            decode_with(r#"[{"message":"a"},{"message":"a"},{"#, &limits),
            Err(IngestError::Malformed { index: 2, .. })
        ));
        let bytes = b"[{\"message\":\"a\"},[\"\xff\"]]";
        assert!(matches!(
            decode_body(
                bytes,
                &DecodeContext {
                    project: "p",
                    service: Some("api"),
                    now: NOW,
                    limits: &Limits::default(),
                },
            ),
            Err(IngestError::Malformed { index: 1, .. })
        ));
        // Non-object entries are skipped whole, arrays and objects inside
        // them included.
        let errs = invalid(r#"[[{"message":"a"},[1]],"x",null,{"message":"a"},true]"#);
        let got: Vec<usize> = errs.iter().map(|e| e.index).collect();
        assert_eq!(got, [0, 1, 2, 4]);
        assert!(errs.iter().all(|e| e.field.is_empty()));
    }

    #[test]
    fn escaped_keys_are_the_names_they_spell() {
        let e = &decode(r#"{"mes\u0073age":"a","lev\u0065l":"error","x\"y":1}"#).unwrap()[0];
        assert_eq!(e.message, "a");
        assert_eq!(e.level, Level::Error);
        assert_eq!(e.attributes["x\"y"], AttrValue::Int(1));
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
    fn a_huge_attribute_object_is_refused_by_its_count() {
        // 200,000 keys in descending order (the worst order for a sorted
        // map): refused for the count alone, without adding any of them.
        let mut body = String::from(r#"{"message":"m","attributes":{"#);
        for i in (0..200_000).rev() {
            if i != 199_999 {
                body.push(',');
            }
            body.push_str(&format!("\"k{i:06}\":{{}}"));
        }
        body.push_str(r#"},"zz":1}"#);
        let errs = invalid(&body);
        assert_eq!(errs.len(), 1, "{:?}", &errs[..errs.len().min(3)]);
        assert_eq!(errs[0].field, "attributes");
        assert_eq!(
            errs[0].reason,
            format!(
                "has 200001 attributes, the limit is {}",
                Limits::default().max_attributes
            )
        );
    }

    #[test]
    fn limits_are_enforced() {
        assert!(matches!(
            decode_with(
                r#"{"message":"a"}"#,
                &Limits {
                    max_entries: 0,
                    ..Limits::default()
                }
            ),
            Err(IngestError::TooManyEntries { limit: 0 })
        ));
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
