//! What every sampled kind shares (`diskusage`, `storage`, `memory`, `temperature` ...):
//! the kinds the agent samples itself, every `interval`, comparing each sample with a
//! threshold (with hysteresis) or taking the probe's own verdict, through a `for`
//! debounce. CRITICAL while the condition holds, OK after, like a service.
//!
//! In a check file, next to the kind's own keys:
//!
//! ```yaml
//! interval: 30s          # how often it is sampled (default 30s, at least 1s)
//! threshold: 90          # where the condition starts to hold (a per-kind default)
//! clear_threshold: 85    # where it stops (default: a little on the good side of threshold)
//! for: 3                 # consecutive samples beyond the line before it changes: a count,
//!                        # or a duration (2m) turned into samples with the interval
//! ```
//!
//! A sampled kind's module: its definition `K` (its own keys) read with
//! [`SampledDefinition::<K>::from_yaml`], validated with [`SampledFields::resolve`] and its
//! [`ThresholdRule`], and a validated check that hands out a [`SampledCheck`] through
//! [`CheckKind::sampled`](super::CheckKind::sampled).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use monitor_engine::{AlertText, CheckSpec, ConditionCheck};
use monitor_health::text::{format_value, reading_text};
use monitor_health::threshold::{Direction, Hysteresis, Threshold};
use monitor_health::{Probe, Reading, Unit};
use monitor_wire::duration::{format_duration, parse_duration};
use monitor_wire::Details;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_norway::{Mapping, Value};

use crate::problem::{deserialize_all, struct_fields, Problem};

/// The interval when a check file sets none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// The shortest interval a check may ask for.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A sampled check file: the kind's own keys (`K`) and the keys every sampled kind shares.
/// Written back as one flat mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SampledDefinition<K> {
    #[serde(flatten)]
    pub kind: K,
    #[serde(flatten)]
    pub shared: SampledFields,
}

impl<K> SampledDefinition<K> {
    pub fn new(kind: K) -> Self {
        SampledDefinition {
            kind,
            shared: SampledFields::default(),
        }
    }
}

impl<K: DeserializeOwned> SampledDefinition<K> {
    /// Reads a check file: the shared keys into [`SampledFields`], the rest into `K`;
    /// every wrong key of either is reported, an unknown key with every key both know.
    pub(crate) fn from_yaml(value: Value, file: &Path) -> Result<Self, Vec<Problem>> {
        let shared_names = struct_fields::<SampledFields>();
        let (mut own, mut shared) = (Mapping::new(), Mapping::new());
        match value {
            Value::Mapping(mapping) => {
                for (key, entry) in mapping {
                    let is_shared = key
                        .as_str()
                        .is_some_and(|name| shared_names.contains(&name));
                    if is_shared {
                        shared.insert(key, entry);
                    } else {
                        own.insert(key, entry);
                    }
                }
            }
            Value::Null => {}
            other => return deserialize_all::<K>(other, file, "", &[]).map(Self::new),
        }
        let kind = deserialize_all::<K>(Value::Mapping(own), file, "", &[]).map_err(|problems| {
            let every_key: Vec<&str> = struct_fields::<K>()
                .iter()
                .chain(shared_names)
                .copied()
                .collect();
            problems
                .into_iter()
                .map(|mut problem| {
                    if problem.message.starts_with("unknown key: use one of ") {
                        problem.message =
                            format!("unknown key: use one of {}", every_key.join(", "));
                    }
                    problem
                })
                .collect::<Vec<_>>()
        });
        let shared = deserialize_all::<SampledFields>(Value::Mapping(shared), file, "", &[]);
        match (kind, shared) {
            (Ok(kind), Ok(shared)) => Ok(SampledDefinition { kind, shared }),
            (kind, shared) => Err(kind
                .err()
                .into_iter()
                .chain(shared.err())
                .flatten()
                .collect()),
        }
    }
}

/// The keys every sampled kind's check file may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampledFields {
    /// How often the check is sampled: seconds or a duration (`30s`, `5m`). Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<SampleInterval>,
    /// Where the condition starts to hold (reached or passed): a number, in the kind's
    /// unit (`90`, `90%`, `1GiB`, `80`). Default: the kind's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Quantity>,
    /// Where it stops holding (only once past it). Default: a little on the good side of
    /// `threshold` (the kind's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_threshold: Option<Quantity>,
    /// How many consecutive samples beyond the line change the state: a count (`3`) or a
    /// duration (`2m`, turned into samples with `interval`, rounded up). Default 1.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Debounce>,
}

/// How a sampled kind's values compare with thresholds.
#[derive(Debug, Clone, Copy)]
pub struct ThresholdRule {
    /// What `threshold` and `clear_threshold` are counted in.
    pub unit: Unit,
    pub direction: Direction,
    /// The threshold of a check file that sets none; `None`: the file must set one.
    pub default_threshold: Option<f64>,
    /// The clear threshold of a check file that sets none, from its threshold.
    pub default_clear: fn(f64) -> f64,
}

/// [`SampledFields`], validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub interval: Duration,
    pub threshold: Option<Threshold>,
    /// What the threshold is counted in (`None` without a threshold rule).
    pub unit: Option<Unit>,
    /// `for`, in samples (at least 1).
    pub debounce: u32,
}

impl SampledFields {
    /// Validates the shared keys for a kind whose values compare with thresholds as `rule`
    /// says, or, with `None`, for a kind whose probe judges by itself (which takes no
    /// threshold). Every problem names `file` and its key.
    pub fn resolve(
        &self,
        file: &Path,
        rule: Option<ThresholdRule>,
    ) -> Result<Sampling, Vec<Problem>> {
        let mut problems = Vec::new();
        let interval = self
            .interval
            .map_or(DEFAULT_INTERVAL, |interval| interval.0);
        if interval < MIN_INTERVAL {
            problems.push(Problem::at_field(
                file,
                "interval",
                format!(
                    "{} is too short: sample at most once a second (interval: 1s or more)",
                    format_duration(interval)
                ),
            ));
        }
        let debounce = match self.debounce {
            None => 1,
            Some(Debounce::Samples(0)) => {
                problems.push(Problem::at_field(
                    file,
                    "for",
                    "0 samples: write 1 or more samples (for: 3), or a duration (for: 2m)",
                ));
                1
            }
            Some(Debounce::Samples(samples)) => samples,
            Some(Debounce::Duration(duration)) => samples_in(duration, interval),
        };
        let threshold = match rule {
            None => {
                for (field, set) in [
                    ("threshold", self.threshold.is_some()),
                    ("clear_threshold", self.clear_threshold.is_some()),
                ] {
                    if set {
                        problems.push(Problem::at_field(
                            file,
                            field,
                            "this check judges by itself and takes no threshold: remove the line",
                        ));
                    }
                }
                None
            }
            Some(rule) => self.threshold(file, rule, &mut problems),
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Sampling {
            interval,
            threshold,
            unit: rule.map(|rule| rule.unit),
            debounce,
        })
    }

    fn threshold(
        &self,
        file: &Path,
        rule: ThresholdRule,
        problems: &mut Vec<Problem>,
    ) -> Option<Threshold> {
        let mut parse = |field: &str, quantity: &Quantity| match quantity.value(rule.unit) {
            Ok(value) => Some(value),
            Err(message) => {
                problems.push(Problem::at_field(file, field, message));
                None
            }
        };
        let raise = match &self.threshold {
            Some(quantity) => parse("threshold", quantity)?,
            None => match rule.default_threshold {
                Some(raise) => raise,
                None => {
                    problems.push(Problem::at_field(
                        file,
                        "threshold",
                        format!(
                            "missing: add a `threshold:` line, for example threshold: {}",
                            match rule.unit {
                                Unit::Percent => "90",
                                Unit::Bytes => "1G",
                                Unit::Celsius => "80",
                                Unit::Number => "1",
                                Unit::Milliseconds => "500",
                            }
                        ),
                    ));
                    return None;
                }
            },
        };
        let clear = match &self.clear_threshold {
            Some(quantity) => parse("clear_threshold", quantity)?,
            None => (rule.default_clear)(raise),
        };
        let wrong_side = match rule.direction {
            Direction::Above => clear > raise,
            Direction::Below => clear < raise,
        };
        if wrong_side {
            let (relation, side) = match rule.direction {
                Direction::Above => ("above", "at or below"),
                Direction::Below => ("below", "at or above"),
            };
            problems.push(Problem::at_field(
                file,
                "clear_threshold",
                format!(
                    "{} is {relation} the threshold {}: the condition could never clear; set it {side} the threshold",
                    format_value(clear, rule.unit),
                    format_value(raise, rule.unit)
                ),
            ));
            return None;
        }
        Some(Threshold {
            raise,
            clear,
            direction: rule.direction,
        })
    }
}

/// A `for:` duration in samples of `interval`: rounded up, at least 1.
fn samples_in(duration: Duration, interval: Duration) -> u32 {
    if interval.is_zero() {
        return 1;
    }
    let samples = duration.as_millis().div_ceil(interval.as_millis());
    u32::try_from(samples).unwrap_or(u32::MAX).max(1)
}

/// `interval:` in a check file: seconds or a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInterval(pub Duration);

impl Serialize for SampleInterval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for SampleInterval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        monitor_wire::duration::plain::deserialize(deserializer).map(SampleInterval)
    }
}

/// `for:` in a check file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Debounce {
    /// This many consecutive samples (`for: 3`).
    Samples(u32),
    /// Samples for this long (`for: 2m`), counted with the check's interval.
    Duration(Duration),
}

impl Serialize for Debounce {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Debounce::Samples(samples) => serializer.serialize_u32(*samples),
            Debounce::Duration(duration) => serializer.serialize_str(&format_duration(*duration)),
        }
    }
}

impl<'de> Deserialize<'de> for Debounce {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DebounceVisitor;
        impl Visitor<'_> for DebounceVisitor {
            type Value = Debounce;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a number of samples (3) or a duration (2m)")
            }
            fn visit_u64<E: de::Error>(self, samples: u64) -> Result<Debounce, E> {
                u32::try_from(samples).map(Debounce::Samples).map_err(|_| {
                    E::custom(format!(
                        "{samples} samples is too many: write a duration such as 10m"
                    ))
                })
            }
            fn visit_i64<E: de::Error>(self, samples: i64) -> Result<Debounce, E> {
                u64::try_from(samples)
                    .map_err(|_| {
                        E::custom(format!(
                            "{samples} samples: write 1 or more samples, or a duration such as 2m"
                        ))
                    })
                    .and_then(|samples| self.visit_u64(samples))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Debounce, E> {
                let text = text.trim();
                if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
                    return text
                        .parse::<u64>()
                        .map_err(|_| {
                            E::custom(format!(
                                "{text} samples is too many: write a duration such as 10m"
                            ))
                        })
                        .and_then(|samples| self.visit_u64(samples));
                }
                parse_duration(text)
                    .map(Debounce::Duration)
                    .map_err(|error| {
                        E::custom(format!("{error}; or a number of samples such as 3"))
                    })
            }
        }
        deserializer.deserialize_any(DebounceVisitor)
    }
}

/// A threshold as written: a number, or a number with its unit (`90%`, `1.5GiB`, `80°C`).
/// Kept as written (so a file reads back the same); [`Quantity::value`] reads it in a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity(pub String);

impl Quantity {
    /// The number in `unit`: a trailing `%` for percents, `°C`/`C` for degrees, `ms` for
    /// milliseconds; bytes with `B`, `K`, `M`, `G`, `T` (binary: `1G` is 1024³ bytes, as
    /// `df -h` counts), `KiB`... and `KB`... (both binary too).
    pub fn value(&self, unit: Unit) -> Result<f64, String> {
        let text = self.0.trim();
        let (number, multiplier) = match unit {
            Unit::Percent => (text.strip_suffix('%').unwrap_or(text), 1.0),
            Unit::Celsius => (
                text.strip_suffix("°C")
                    .or_else(|| text.strip_suffix('C'))
                    .unwrap_or(text),
                1.0,
            ),
            Unit::Milliseconds => (text.strip_suffix("ms").unwrap_or(text), 1.0),
            Unit::Number => (text, 1.0),
            Unit::Bytes => split_bytes(text),
        };
        let number = number.trim();
        match number.parse::<f64>() {
            Ok(value) if value.is_finite() && value >= 0.0 => {
                if unit == Unit::Percent && value > 100.0 {
                    return Err(format!(
                        "{text} is over 100%: write a percentage from 0 to 100, for example 90"
                    ));
                }
                Ok(value * multiplier)
            }
            _ => Err(match unit {
                Unit::Percent => format!(
                    "\"{text}\" is not a percentage: write a number from 0 to 100, for example 90"
                ),
                Unit::Bytes => {
                    format!("\"{text}\" is not a size: write bytes or a size such as 500M or 1.5G")
                }
                Unit::Celsius => format!(
                    "\"{text}\" is not a temperature: write degrees Celsius, for example 80"
                ),
                Unit::Milliseconds => format!(
                    "\"{text}\" is not a duration in milliseconds: write a number such as 500"
                ),
                Unit::Number => format!("\"{text}\" is not a number: write one such as 2 or 0.5"),
            }),
        }
    }
}

/// `1.5G` → ("1.5", 1024³): the number and what its suffix multiplies it by.
fn split_bytes(text: &str) -> (&str, f64) {
    let digits = text
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let power = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 1,
        "M" | "MB" | "MIB" => 2,
        "G" | "GB" | "GIB" => 3,
        "T" | "TB" | "TIB" => 4,
        // Not a number then: the caller says what to write.
        _ => return (text, 1.0),
    };
    (number, 1024f64.powi(power))
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.parse::<u64>() {
            Ok(number) => serializer.serialize_u64(number),
            Err(_) => match self.0.parse::<f64>() {
                Ok(number) => serializer.serialize_f64(number),
                Err(_) => serializer.serialize_str(&self.0),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;
        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a number, or a number with its unit (90%, 1.5G)")
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Quantity, E> {
                Ok(Quantity(number.to_string()))
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Quantity, E> {
                Ok(Quantity(number.to_string()))
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Quantity, E> {
                Ok(Quantity(number.to_string()))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Quantity, E> {
                Ok(Quantity(text.trim().to_owned()))
            }
        }
        deserializer.deserialize_any(QuantityVisitor)
    }
}

/// The alerts of a sampled check: its subject (type: the kind's name; name: what it
/// watches, `/`, `soc`) and its texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledTexts {
    pub subject_type: String,
    pub subject_name: String,
    /// The CRITICAL while the condition holds.
    pub critical: AlertText,
    /// The OK once it no longer holds.
    pub ok: AlertText,
    /// The CRITICAL of a condition that comes and goes too often; `None`: never flaps
    /// (the hysteresis and `for` keep a value at the line from flapping).
    pub flapping: Option<AlertText>,
}

impl SampledTexts {
    /// Texts whose CRITICAL and OK share `name`, as Mender's do, with their statuses.
    pub fn new(
        subject_type: &str,
        subject_name: impl Into<String>,
        name: impl Into<String>,
        critical_status: &str,
        ok_status: &str,
    ) -> Self {
        let name = name.into();
        SampledTexts {
            subject_type: subject_type.to_owned(),
            subject_name: subject_name.into(),
            critical: AlertText {
                name: name.clone(),
                status: critical_status.to_owned(),
            },
            ok: AlertText {
                name,
                status: ok_status.to_owned(),
            },
            flapping: None,
        }
    }
}

/// A validated sampled check, as the agent's sampled source runs it: what to read, how
/// often, how to judge it, and what its alerts say.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledCheck {
    pub probe: Probe,
    pub interval: Duration,
    /// For [`Reading::Value`]s; `None` for a probe that judges by itself.
    pub threshold: Option<Threshold>,
    /// What the threshold is counted in.
    pub unit: Option<Unit>,
    /// `for`, in samples (at least 1).
    pub debounce: u32,
    pub texts: SampledTexts,
}

impl SampledCheck {
    pub fn new(probe: Probe, sampling: Sampling, texts: SampledTexts) -> Self {
        SampledCheck {
            probe,
            interval: sampling.interval,
            threshold: sampling.threshold,
            unit: sampling.unit,
            debounce: sampling.debounce,
            texts,
        }
    }

    /// The engine's condition: CRITICAL while it holds, OK after.
    pub fn engine_spec(&self) -> CheckSpec {
        let texts = &self.texts;
        CheckSpec::Condition(ConditionCheck {
            subject_name: texts.subject_name.clone(),
            subject_type: texts.subject_type.clone(),
            critical: texts.critical.clone(),
            ok: texts.ok.clone(),
            flapping: texts.flapping.clone(),
        })
    }

    /// A fresh state for judging its samples.
    pub fn hysteresis(&self) -> Hysteresis {
        Hysteresis::new(self.threshold, self.debounce)
    }

    /// The alert's details for a sample: the description says what was measured and the
    /// threshold ("Disk / 93% used (threshold 90%)"); the fields carry the numbers
    /// (`value`, `unit`, `threshold`, `clear_threshold`) for machines.
    pub fn details(&self, reading: &Reading) -> Details {
        let mut details = Details::default();
        match reading {
            Reading::Value { value, unit, what } => {
                details.description =
                    Some(reading_text(what, *value, *unit, self.threshold.as_ref()));
                details.fields.insert("value".into(), (*value).into());
                details.fields.insert("unit".into(), unit.symbol().into());
                if let Some(threshold) = &self.threshold {
                    details
                        .fields
                        .insert("threshold".into(), threshold.raise.into());
                    details
                        .fields
                        .insert("clear_threshold".into(), threshold.clear.into());
                }
            }
            Reading::Verdict { text, .. } => details.description = Some(text.clone()),
            Reading::Unavailable(message) => details.description = Some(message.clone()),
        }
        details
    }

    /// What `monitorctl list` adds to a check's source: "every 30s, threshold 90%".
    pub fn describe_sampling(&self) -> String {
        let mut text = format!("every {}", format_duration(self.interval));
        let unit = self.unit.unwrap_or(Unit::Number);
        if let Some(threshold) = &self.threshold {
            text.push_str(&format!(
                ", threshold {}",
                format_value(threshold.raise, unit)
            ));
            if threshold.clear != threshold.raise {
                text.push_str(&format!(", clear {}", format_value(threshold.clear, unit)));
            }
        }
        if self.debounce > 1 {
            text.push_str(&format!(", for {} samples", self.debounce));
        }
        text
    }
}

#[cfg(test)]
mod tests;
