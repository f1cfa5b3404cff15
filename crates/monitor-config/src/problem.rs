//! [`Problem`], and YAML loading that reports every wrong key of a file instead of the first.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_norway::{Mapping, Value};

/// One thing wrong with a configuration file: which file, which field (if known), and what
/// to do about it.
///
/// Displays as `<file>: <field>: <message>`, or `<file>: <message>` without a field; the
/// severity is not part of it, so each caller says it its own way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: PathBuf,
    /// The key in the file (`pattern`, `alert.type`, `LOG_PATTERN`), if the problem has one.
    pub field: Option<String>,
    /// Lowercase, no trailing period, says what to do.
    pub message: String,
    pub severity: Severity,
}

/// Whether a problem keeps its check (or the settings) from being used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The check is refused until the file is fixed.
    #[default]
    Error,
    /// The check runs regardless (a key Mender ignores, so we do too); worth fixing.
    Warning,
}

impl Problem {
    /// A problem with the file as a whole.
    pub fn in_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Problem {
            file: file.into(),
            field: None,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// A problem with one field of the file.
    pub fn at_field(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            file: file.into(),
            field: Some(field.into()),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// Something about one field that does not stop the check from running.
    pub fn warning_at_field(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::at_field(file, field, message)
        }
    }

    /// Whether the check (or settings) it is about is used regardless.
    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {}: {}", self.file.display(), field, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for Problem {}

/// Lowercases the first letter of an OS error (`Permission denied (os error 13)`), so that it
/// reads as part of our own lowercase messages.
pub(crate) fn lowercase_first(error: &dyn fmt::Display) -> String {
    let text = error.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Parses YAML text into a tree; an empty document (or one with only comments) is `Null`.
pub(crate) fn parse_yaml(text: &str, file: &Path) -> Result<Value, Vec<Problem>> {
    serde_norway::from_str::<Value>(text).map_err(|error| {
        vec![Problem::in_file(
            file,
            format!("invalid YAML: {error}: fix the syntax"),
        )]
    })
}

/// A nested struct whose own keys are checked one by one, like the top level.
pub(crate) type NestedCheck = fn(Value, &Path, &str) -> Vec<Problem>;

/// Every problem of a nested mapping of type `T`, for [`deserialize_all`]'s `nested`.
pub(crate) fn nested_problems<T: DeserializeOwned>(
    value: Value,
    file: &Path,
    prefix: &str,
) -> Vec<Problem> {
    deserialize_all::<T>(value, file, prefix, &[])
        .err()
        .unwrap_or_default()
}

/// Deserializes a mapping into the serde struct `T`, reporting every wrong key rather than the
/// first one serde stops at: unknown keys, values of the wrong type, missing required keys.
///
/// `prefix` is put before field names (`alert.`); `nested` names keys holding structs whose
/// own keys are checked the same way. `Null` (an empty file) is an empty mapping.
///
/// How: each key is deserialized on its own, as a one-key mapping. serde's derived code
/// consumes every entry before it looks for missing fields, so an error other than
/// "missing field" in a one-key mapping is about that key.
pub(crate) fn deserialize_all<T: DeserializeOwned>(
    value: Value,
    file: &Path,
    prefix: &str,
    nested: &[(&str, NestedCheck)],
) -> Result<T, Vec<Problem>> {
    let value = match value {
        Value::Null => Value::Mapping(Mapping::new()),
        other => other,
    };
    if let Ok(parsed) = T::deserialize(value.clone()) {
        return Ok(parsed);
    }
    let whole = |message: String| {
        if prefix.is_empty() {
            Problem::in_file(file, message)
        } else {
            Problem::at_field(file, prefix.trim_end_matches('.'), message)
        }
    };
    let Value::Mapping(mapping) = value else {
        return Err(vec![whole(format!(
            "expected `key: value` lines, found {}: write one key per line",
            describe(&value)
        ))]);
    };

    let fields = struct_fields::<T>();
    let mut problems = Vec::new();
    let mut good_keys = Mapping::new();
    for (key, entry) in mapping {
        let Some(name) = key.as_str() else {
            problems.push(whole(format!(
                "keys must be names, found {}: use one of {}",
                describe(&key),
                fields.join(", ")
            )));
            continue;
        };
        let field = format!("{prefix}{name}");
        if !fields.contains(&name) {
            problems.push(Problem::at_field(
                file,
                field,
                format!("unknown key: use one of {}", fields.join(", ")),
            ));
            continue;
        }
        let mut single = Mapping::new();
        single.insert(key.clone(), entry.clone());
        match T::deserialize(Value::Mapping(single)) {
            Err(error) if missing_field_in(&error, fields).is_none() => {
                let nested_check = nested
                    .iter()
                    .find(|(nested_name, _)| *nested_name == name)
                    .map(|(_, check)| check);
                let nested_problems = match nested_check {
                    Some(check) => check(entry, file, &format!("{field}.")),
                    None => Vec::new(),
                };
                if nested_problems.is_empty() {
                    problems.push(Problem::at_field(file, field, error.to_string()));
                } else {
                    problems.extend(nested_problems);
                }
            }
            _ => {
                good_keys.insert(key, entry);
            }
        }
    }

    // serde names one missing field at a time: name it, stand in a placeholder of the right
    // type for it, and ask again, so that every missing key is reported at once.
    for _ in 0..=fields.len() {
        let error = match T::deserialize(Value::Mapping(good_keys.clone())) {
            Ok(parsed) if problems.is_empty() => return Ok(parsed),
            Ok(_) => break,
            Err(error) => error,
        };
        let Some(missing) = missing_field_in(&error, fields) else {
            if problems.is_empty() {
                problems.push(whole(error.to_string()));
            }
            break;
        };
        let field = format!("{prefix}{missing}");
        if !problems
            .iter()
            .any(|problem| problem.field.as_deref() == Some(field.as_str()))
        {
            problems.push(Problem::at_field(
                file,
                field,
                format!("missing: add a `{missing}:` line"),
            ));
        }
        let Some(placeholder) = placeholder_for::<T>(missing, fields) else {
            break;
        };
        good_keys.insert(Value::String(missing.to_owned()), placeholder);
    }
    Err(problems)
}

/// A value that field `name` of `T` accepts, to stand in for it while looking for more problems.
fn placeholder_for<T: DeserializeOwned>(name: &str, fields: &[&'static str]) -> Option<Value> {
    let candidates = [
        Value::String(String::new()),
        Value::Number(0.into()),
        Value::Bool(false),
        Value::Mapping(Mapping::new()),
        Value::Sequence(Vec::new()),
        Value::Null,
    ];
    candidates.into_iter().find(|candidate| {
        let mut single = Mapping::new();
        single.insert(Value::String(name.to_owned()), candidate.clone());
        match T::deserialize(Value::Mapping(single)) {
            Ok(_) => true,
            Err(error) => missing_field_in(&error, fields).is_some_and(|other| other != name),
        }
    })
}

/// The field a "missing field" error is about, compared against the error serde itself
/// builds for each field, so that no message text is guessed.
fn missing_field_in(error: &serde_norway::Error, fields: &[&'static str]) -> Option<&'static str> {
    let text = error.to_string();
    fields
        .iter()
        .copied()
        .find(|field| <serde_norway::Error as de::Error>::missing_field(field).to_string() == text)
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_owned(),
        Value::Bool(value) => format!("`{value}`"),
        Value::Number(value) => format!("`{value}`"),
        Value::String(value) => format!("`{value}`"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(_) => "a tagged value".to_owned(),
    }
}

/// The field names of a struct deriving `Deserialize`, as serde hands them to the
/// deserializer (after `rename`), so that the list of known keys is never written twice.
pub(crate) fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that only records the field list serde passes to `deserialize_struct`.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct FieldNamesRecorded;

impl fmt::Display for FieldNamesRecorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for FieldNamesRecorded {}

impl de::Error for FieldNamesRecorded {
    fn custom<M: fmt::Display>(_message: M) -> Self {
        FieldNamesRecorded
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = FieldNamesRecorded;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(FieldNamesRecorded)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(FieldNamesRecorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
