//! A message as one line of text (what patterns match and people read) and as details.
//!
//! The text follows `dbus-monitor`'s words (`string "hello"`, `int32 42`, `array [ … ]`) on
//! one line, so that Mender patterns written against `dbus-monitor` output keep working.
//! Strings are quoted with `"` and `\` escaped and control characters written as escapes,
//! so a signal is always exactly one line.

use std::fmt::Write;

use monitor_wire::Details;
use serde_json::{Map, Number, Value as Json};
use zbus::message::Type as MessageType;
use zbus::zvariant::{Structure, Value};
use zbus::Message;

/// Renders a received message as one line, e.g. `signal sender=:1.5 path=/org/x
/// interface=org.x member=Changed args: string "hello" int32 42` (header fields the message
/// lacks and `args:` without arguments are left out).
pub fn render_signal(message: &Message) -> String {
    let header = message.header();
    let mut text = String::from(match message.message_type() {
        MessageType::Signal => "signal",
        MessageType::MethodCall => "method_call",
        MessageType::MethodReturn => "method_return",
        MessageType::Error => "error",
    });
    if let Some(sender) = header.sender() {
        let _ = write!(text, " sender={sender}");
    }
    if let Some(path) = header.path() {
        let _ = write!(text, " path={path}");
    }
    if let Some(interface) = header.interface() {
        let _ = write!(text, " interface={interface}");
    }
    if let Some(member) = header.member() {
        let _ = write!(text, " member={member}");
    }
    let arguments = arguments(message);
    if !arguments.is_empty() {
        text.push_str(" args:");
        for argument in &arguments {
            text.push(' ');
            render_value(&mut text, argument);
        }
    }
    text
}

/// The details of a matched signal: `text` as description, the header fields and the
/// arguments as JSON.
pub(crate) fn signal_details(message: &Message, text: &str) -> Details {
    let header = message.header();
    let mut details = Details {
        description: Some(text.to_owned()),
        ..Details::default()
    };
    let mut field = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            details.fields.insert(name.to_owned(), Json::String(value));
        }
    };
    field("sender", header.sender().map(ToString::to_string));
    field("path", header.path().map(ToString::to_string));
    field("interface", header.interface().map(ToString::to_string));
    field("member", header.member().map(ToString::to_string));
    let arguments = arguments(message).iter().map(to_json).collect();
    details
        .fields
        .insert("args".to_owned(), Json::Array(arguments));
    details
}

/// The message's arguments; none when it has no body or the body cannot be read.
fn arguments(message: &Message) -> Vec<Value<'static>> {
    let body = message.body();
    if body.signature().to_string().is_empty() {
        return Vec::new();
    }
    match body.deserialize::<Structure<'_>>() {
        Ok(structure) => structure
            .fields()
            .iter()
            .filter_map(|field| field.try_to_owned().ok().map(Value::from))
            .collect(),
        Err(error) => {
            tracing::debug!(%error, "cannot read a signal's arguments");
            Vec::new()
        }
    }
}

fn render_value(text: &mut String, value: &Value<'_>) {
    match value {
        Value::U8(number) => {
            let _ = write!(text, "byte {number}");
        }
        Value::Bool(flag) => {
            let _ = write!(text, "boolean {flag}");
        }
        Value::I16(number) => {
            let _ = write!(text, "int16 {number}");
        }
        Value::U16(number) => {
            let _ = write!(text, "uint16 {number}");
        }
        Value::I32(number) => {
            let _ = write!(text, "int32 {number}");
        }
        Value::U32(number) => {
            let _ = write!(text, "uint32 {number}");
        }
        Value::I64(number) => {
            let _ = write!(text, "int64 {number}");
        }
        Value::U64(number) => {
            let _ = write!(text, "uint64 {number}");
        }
        Value::F64(number) => {
            let _ = write!(text, "double {number}");
        }
        Value::Str(string) => {
            text.push_str("string ");
            quote(text, string.as_str());
        }
        Value::Signature(signature) => {
            text.push_str("signature ");
            quote(text, &signature.to_string());
        }
        Value::ObjectPath(path) => {
            text.push_str("object path ");
            quote(text, path.as_str());
        }
        Value::Value(inner) => {
            text.push_str("variant ");
            render_value(text, inner);
        }
        Value::Array(array) => {
            text.push_str("array [");
            for element in array.iter() {
                text.push(' ');
                render_value(text, element);
            }
            text.push_str(" ]");
        }
        Value::Dict(dict) => {
            text.push_str("array [");
            for (key, value) in dict.iter() {
                text.push_str(" dict entry( ");
                render_value(text, key);
                text.push(' ');
                render_value(text, value);
                text.push_str(" )");
            }
            text.push_str(" ]");
        }
        Value::Structure(structure) => {
            text.push_str("struct {");
            for field in structure.fields() {
                text.push(' ');
                render_value(text, field);
            }
            text.push_str(" }");
        }
        Value::Fd(_) => text.push_str("file descriptor"),
        // Only with zvariant's deprecated `gvariant` feature (maybe types).
        #[allow(unreachable_patterns)]
        other => {
            let _ = write!(text, "{other}");
        }
    }
}

fn quote(text: &mut String, string: &str) {
    text.push('"');
    for character in string.chars() {
        match character {
            '"' => text.push_str("\\\""),
            '\\' => text.push_str("\\\\"),
            '\n' => text.push_str("\\n"),
            '\r' => text.push_str("\\r"),
            '\t' => text.push_str("\\t"),
            character if character.is_control() => {
                let _ = write!(text, "\\u{{{:x}}}", u32::from(character));
            }
            character => text.push(character),
        }
    }
    text.push('"');
}

fn to_json(value: &Value<'_>) -> Json {
    match value {
        Value::U8(number) => Json::from(*number),
        Value::Bool(flag) => Json::Bool(*flag),
        Value::I16(number) => Json::from(*number),
        Value::U16(number) => Json::from(*number),
        Value::I32(number) => Json::from(*number),
        Value::U32(number) => Json::from(*number),
        Value::I64(number) => Json::from(*number),
        Value::U64(number) => Json::from(*number),
        Value::F64(number) => Number::from_f64(*number).map_or(Json::Null, Json::Number),
        Value::Str(string) => Json::String(string.to_string()),
        Value::Signature(signature) => Json::String(signature.to_string()),
        Value::ObjectPath(path) => Json::String(path.to_string()),
        Value::Value(inner) => to_json(inner),
        Value::Array(array) => Json::Array(array.iter().map(to_json).collect()),
        Value::Dict(dict) => Json::Object(
            dict.iter()
                .map(|(key, value)| (key_text(key), to_json(value)))
                .collect::<Map<_, _>>(),
        ),
        Value::Structure(structure) => {
            Json::Array(structure.fields().iter().map(to_json).collect())
        }
        Value::Fd(_) => Json::String("file descriptor".to_owned()),
        #[allow(unreachable_patterns)]
        other => Json::String(other.to_string()),
    }
}

/// A dictionary key (always a basic type in D-Bus) as a JSON object key.
fn key_text(key: &Value<'_>) -> String {
    match to_json(key) {
        Json::String(string) => string,
        other => other.to_string(),
    }
}
