//! Durations as users write them: plain seconds (`30`, Mender's form) or with units
//! (`30s`, `5m`, `2h30m`, `1d`), and [`Expiration`]s that may also be `never`: the one
//! expiration type of check files, `monitorctl create` and the alert engine.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Why a duration did not parse. Every variant carries the text the user wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: write seconds (30) or a duration such as 30s, 5m, 2h30m")]
    Empty,
    #[error(
        "invalid duration \"{input}\": write seconds (30) or a number followed by a unit, for example 30s, 5m, 2h30m"
    )]
    ExpectedNumber { input: String },
    #[error("invalid duration \"{input}\": unknown unit \"{unit}\", use ms, s, m, h or d (for example 30s, 5m, 2h30m)")]
    UnknownUnit { input: String, unit: String },
    #[error("invalid duration \"{input}\": {number} has no unit, add one of ms, s, m, h or d (for example 2h30m)")]
    MissingUnit { input: String, number: u64 },
    #[error("invalid duration \"{input}\": use whole numbers, for example 1m30s or 1500ms")]
    Fractional { input: String },
    #[error("invalid duration \"{input}\": too large, use at most a few years")]
    TooLarge { input: String },
}

/// Parses `30` (seconds, as Mender writes them), `30s`, `5m`, `1h`, `2h30m`, `1d`, `1500ms`.
///
/// Parts may be separated by spaces (`1h 30m`); long unit names (`min`, `hours`, ...) are
/// accepted too. Negative and fractional values are refused.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let input = text.trim();
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let too_large = || DurationError::TooLarge {
        input: input.to_owned(),
    };
    if input.bytes().all(|byte| byte.is_ascii_digit()) {
        let seconds: u64 = input.parse().map_err(|_| too_large())?;
        return Ok(Duration::from_secs(seconds));
    }

    let mut total_millis: u64 = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::ExpectedNumber {
                input: input.to_owned(),
            });
        }
        let number: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        if rest.starts_with(['.', ',']) {
            return Err(DurationError::Fractional {
                input: input.to_owned(),
            });
        }
        rest = rest.trim_start();
        let unit_length = rest
            .bytes()
            .take_while(|byte| byte.is_ascii_alphabetic())
            .count();
        let unit = &rest[..unit_length];
        rest = rest[unit_length..].trim_start();
        if unit.is_empty() {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
                number,
            });
        }
        let millis_per_unit: u64 = match unit.to_ascii_lowercase().as_str() {
            "ms" | "msec" | "millis" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: unit.to_owned(),
                })
            }
        };
        total_millis = number
            .checked_mul(millis_per_unit)
            .and_then(|millis| total_millis.checked_add(millis))
            .ok_or_else(too_large)?;
    }
    Ok(Duration::from_millis(total_millis))
}

/// Writes a duration the way [`parse_duration`] reads it, in its shortest form:
/// `0s`, `30s`, `5m`, `1h30m`, `1d`, `1500ms`. Anything below a millisecond is dropped.
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        let count = millis / size;
        if count > 0 {
            text.push_str(&format!("{count}{unit}"));
            millis %= size;
        }
    }
    text
}

/// How long an alert stays CRITICAL without a new match before it clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiration {
    /// Clears this long after the last match.
    After(Duration),
    /// Stays CRITICAL until cleared by hand (`never`, or `0` as Mender writes it).
    Never,
}

impl Expiration {
    /// A zero duration means `never`, as in Mender's check files.
    pub fn from_duration(duration: Duration) -> Self {
        if duration.is_zero() {
            Expiration::Never
        } else {
            Expiration::After(duration)
        }
    }

    /// The duration, or `None` for [`Expiration::Never`].
    pub fn duration(self) -> Option<Duration> {
        match self {
            Expiration::After(duration) => Some(duration),
            Expiration::Never => None,
        }
    }
}

impl FromStr for Expiration {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("never") {
            return Ok(Expiration::Never);
        }
        parse_duration(text).map(Expiration::from_duration)
    }
}

/// `never`, or the duration as [`format_duration`] writes it.
impl fmt::Display for Expiration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiration::After(duration) => f.write_str(&format_duration(*duration)),
            Expiration::Never => f.write_str("never"),
        }
    }
}

/// The message for a bad expiration: the duration error plus the `never` alternative.
pub fn expiration_message(error: &DurationError) -> String {
    format!("{error}, or never")
}

impl Serialize for Expiration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expiration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor { allow_never: true })
    }
}

/// Reads integers as seconds and strings with [`parse_duration`]; `never` only for expirations.
struct DurationVisitor {
    allow_never: bool,
}

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Expiration;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        if self.allow_never {
            formatter.write_str("seconds, a duration such as 30s or 5m, or never")
        } else {
            formatter.write_str("seconds or a duration such as 30s or 5m")
        }
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Expiration, E> {
        Ok(Expiration::from_duration(Duration::from_secs(seconds)))
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Expiration, E> {
        u64::try_from(seconds)
            .map_err(|_| {
                E::custom(format!(
                    "negative duration {seconds}: use a positive number of seconds"
                ))
            })
            .and_then(|seconds| self.visit_u64(seconds))
    }

    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Expiration, E> {
        Err(E::custom(format!(
            "fractional duration {seconds}: use whole seconds or milliseconds such as 1500ms"
        )))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Expiration, E> {
        if self.allow_never {
            text.parse()
                .map_err(|error: DurationError| E::custom(expiration_message(&error)))
        } else {
            parse_duration(text)
                .map(Expiration::from_duration)
                .map_err(E::custom)
        }
    }
}

/// Serde helpers for plain [`Duration`] fields: integers are seconds, strings use
/// [`parse_duration`]. Zero is allowed here; callers that need a positive duration validate it.
pub mod plain {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let expiration = deserializer.deserialize_any(DurationVisitor { allow_never: false })?;
        Ok(expiration.duration().unwrap_or(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_units() {
        let cases = [
            ("30", 30),
            ("90", 90),
            ("30s", 30),
            ("5m", 300),
            ("1h", 3600),
            ("1h30m", 5400),
            ("2h30m", 9000),
            ("1h 30m", 5400),
            ("1d", 86_400),
            (" 45 sec ", 45),
            ("2 minutes", 120),
            ("0", 0),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        let messages: Vec<String> = ["", "5x", "1h30", "m5", "-5", "1.5s", "99999999999999999999"]
            .into_iter()
            .map(|text| parse_duration(text).unwrap_err().to_string())
            .collect();
        assert_eq!(
            messages,
            [
                "empty duration: write seconds (30) or a duration such as 30s, 5m, 2h30m",
                "invalid duration \"5x\": unknown unit \"x\", use ms, s, m, h or d (for example 30s, 5m, 2h30m)",
                "invalid duration \"1h30\": 30 has no unit, add one of ms, s, m, h or d (for example 2h30m)",
                "invalid duration \"m5\": write seconds (30) or a number followed by a unit, for example 30s, 5m, 2h30m",
                "invalid duration \"-5\": write seconds (30) or a number followed by a unit, for example 30s, 5m, 2h30m",
                "invalid duration \"1.5s\": use whole numbers, for example 1m30s or 1500ms",
                "invalid duration \"99999999999999999999\": too large, use at most a few years",
            ]
        );
    }

    #[test]
    fn expirations_accept_never_and_zero() {
        assert_eq!("never".parse(), Ok(Expiration::Never));
        assert_eq!("Never".parse(), Ok(Expiration::Never));
        assert_eq!("0".parse(), Ok(Expiration::Never));
        assert_eq!(
            "5m".parse(),
            Ok(Expiration::After(Duration::from_secs(300)))
        );
        assert!("nevr".parse::<Expiration>().is_err());
    }

    #[test]
    fn formats_in_the_shortest_form_that_parses_back() {
        for (seconds, text) in [
            (0, "0s"),
            (30, "30s"),
            (300, "5m"),
            (5400, "1h30m"),
            (86_400, "1d"),
            (90_061, "1d1h1m1s"),
        ] {
            assert_eq!(format_duration(Duration::from_secs(seconds)), text);
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(seconds)));
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(Expiration::Never.to_string(), "never");
    }

    #[test]
    fn expirations_deserialize_from_integers_strings_and_never() {
        let parse =
            |yaml: &str| serde_norway::from_str::<Expiration>(yaml).map_err(|e| e.to_string());
        assert_eq!(
            parse("300"),
            Ok(Expiration::After(Duration::from_secs(300)))
        );
        assert_eq!(parse("5m"), Ok(Expiration::After(Duration::from_secs(300))));
        assert_eq!(parse("never"), Ok(Expiration::Never));
        assert_eq!(parse("0"), Ok(Expiration::Never));
        assert_eq!(
            parse("-3").unwrap_err(),
            "negative duration -3: use a positive number of seconds"
        );
        assert_eq!(
            parse("soon").unwrap_err(),
            "invalid duration \"soon\": write seconds (30) or a number followed by a unit, for example 30s, 5m, 2h30m, or never"
        );
    }
}
