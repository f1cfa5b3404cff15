//! Values as people read them in alerts: "93%", "1.5 GiB", "82.3 °C", and a reading with
//! its threshold: "Disk / 93% used (threshold 90%)".

use crate::threshold::Threshold;
use crate::Unit;

/// `value` in `unit`, with at most one decimal (two for plain numbers), trailing zeros
/// dropped; bytes with a binary prefix.
pub fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Percent => format!("{}%", trimmed(value, 1)),
        Unit::Bytes => format_bytes(value),
        Unit::Celsius => format!("{} °C", trimmed(value, 1)),
        Unit::Number => trimmed(value, 2),
        Unit::Milliseconds => format!("{} ms", trimmed(value, 1)),
    }
}

/// Bytes with a binary prefix: "512 B", "1.5 KiB", "3 GiB".
pub fn format_bytes(bytes: f64) -> String {
    const PREFIXES: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut scaled = bytes;
    let mut prefix = 0;
    while scaled.abs() >= 1024.0 && prefix + 1 < PREFIXES.len() {
        scaled /= 1024.0;
        prefix += 1;
    }
    format!("{} {}", trimmed(scaled, 1), PREFIXES[prefix])
}

/// A reading for the alert's details: `what` with the value in place of `{value}` (or
/// after it), then the threshold: "Disk / 93% used (threshold 90%)", "SoC temperature
/// 82.3 °C (threshold 80 °C)".
pub fn reading_text(what: &str, value: f64, unit: Unit, threshold: Option<&Threshold>) -> String {
    let shown = format_value(value, unit);
    let text = if what.contains("{value}") {
        what.replace("{value}", &shown)
    } else {
        format!("{what} {shown}")
    };
    match threshold {
        Some(threshold) => format!("{text} (threshold {})", format_value(threshold.raise, unit)),
        None => text,
    }
}

/// At most `decimals` decimals, without trailing zeros: 93.0 → "93", 82.25 → "82.3" (one).
fn trimmed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold::Direction;

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(format_value(93.0, Unit::Percent), "93%");
        assert_eq!(format_value(93.45, Unit::Percent), "93.5%");
        assert_eq!(format_value(82.3, Unit::Celsius), "82.3 °C");
        assert_eq!(
            format_value(1.5 * 1024.0 * 1024.0 * 1024.0, Unit::Bytes),
            "1.5 GiB"
        );
        assert_eq!(format_value(512.0, Unit::Bytes), "512 B");
        assert_eq!(format_value(0.75, Unit::Number), "0.75");
        assert_eq!(format_value(12.0, Unit::Milliseconds), "12 ms");
    }

    #[test]
    fn a_reading_names_its_threshold() {
        let ninety = Threshold {
            raise: 90.0,
            clear: 85.0,
            direction: Direction::Above,
        };
        assert_eq!(
            reading_text("Disk / {value} used", 93.0, Unit::Percent, Some(&ninety)),
            "Disk / 93% used (threshold 90%)"
        );
        let eighty = Threshold {
            raise: 80.0,
            clear: 75.0,
            direction: Direction::Above,
        };
        assert_eq!(
            reading_text("SoC temperature", 82.3, Unit::Celsius, Some(&eighty)),
            "SoC temperature 82.3 °C (threshold 80 °C)"
        );
        assert_eq!(reading_text("Load", 0.5, Unit::Number, None), "Load 0.5");
    }
}
