//! Alerts per hour as an SVG bar chart, drawn on the server: no chart library, no script.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOURS: u64 = 24;
const BAR_WIDTH: u64 = 14;
const GAP: u64 = 2;
const HEIGHT: u64 = 80;
const LABEL_HEIGHT: u64 = 14;

/// The last 24 hours up to `now`: one bar per hour, CRITICAL (red) on OK (green), the hour
/// of day under every sixth bar and the largest count at the top. `counts` are
/// (start of hour, critical, ok), as `Store::alerts_per_hour` gives them.
pub fn alerts_per_hour(counts: &[(SystemTime, u64, u64)], now: SystemTime) -> String {
    let current_hour = hour_index(now);
    let first_hour = current_hour.saturating_sub(HOURS - 1);
    let mut bars = vec![(0u64, 0u64); HOURS as usize];
    for (start, critical, ok) in counts {
        let hour = hour_index(*start);
        if (first_hour..=current_hour).contains(&hour) {
            let slot = &mut bars[(hour - first_hour) as usize];
            slot.0 += critical;
            slot.1 += ok;
        }
    }
    let most = bars
        .iter()
        .map(|(critical, ok)| critical + ok)
        .max()
        .unwrap_or(0)
        .max(1);
    let width = HOURS * (BAR_WIDTH + GAP);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {}\" role=\"img\" \
         aria-label=\"alerts per hour, last 24 hours\" xmlns=\"http://www.w3.org/2000/svg\">",
        HEIGHT + LABEL_HEIGHT
    );
    for (index, (critical, ok)) in bars.iter().enumerate() {
        let x = index as u64 * (BAR_WIDTH + GAP);
        let critical_height = critical * HEIGHT / most;
        let ok_height = ok * HEIGHT / most;
        let hour_of_day = (first_hour + index as u64) % 24;
        let _ = write!(
            svg,
            "<g><title>{hour_of_day:02}:00 UTC: {critical} CRITICAL, {ok} OK</title>"
        );
        if *ok > 0 {
            let _ = write!(
                svg,
                "<rect class=\"ok\" x=\"{x}\" y=\"{}\" width=\"{BAR_WIDTH}\" height=\"{}\" fill=\"#27ae60\"/>",
                HEIGHT - ok_height - critical_height,
                ok_height.max(1)
            );
        }
        if *critical > 0 {
            let _ = write!(
                svg,
                "<rect class=\"critical\" x=\"{x}\" y=\"{}\" width=\"{BAR_WIDTH}\" height=\"{}\" fill=\"#c0392b\"/>",
                HEIGHT - critical_height,
                critical_height.max(1)
            );
        }
        svg.push_str("</g>");
        if hour_of_day.is_multiple_of(6) {
            let _ = write!(
                svg,
                "<text x=\"{x}\" y=\"{}\" font-size=\"10\" fill=\"#666\">{hour_of_day:02}h</text>",
                HEIGHT + LABEL_HEIGHT - 2
            );
        }
    }
    let _ = write!(
        svg,
        "<line x1=\"0\" y1=\"{HEIGHT}\" x2=\"{width}\" y2=\"{HEIGHT}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"10\" font-size=\"10\" fill=\"#666\">max {most}</text></svg>"
    );
    svg
}

fn hour_index(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        / 3600
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_busiest_hour_and_old_hours_are_left_out() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_262_400 + 1800); // 12:30 UTC
        let hour = |back: u64| UNIX_EPOCH + Duration::from_secs(1_795_262_400 - back * 3600);
        let svg = alerts_per_hour(&[(hour(0), 4, 0), (hour(1), 1, 1), (hour(30), 9, 9)], now);
        assert!(
            svg.contains("<title>12:00 UTC: 4 CRITICAL, 0 OK</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>11:00 UTC: 1 CRITICAL, 1 OK</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("max 4"),
            "the hour 30 h ago is not shown: {svg}"
        );
        assert!(
            svg.contains("height=\"80\" fill=\"#c0392b\""),
            "the busiest bar is full height"
        );
        assert_eq!(svg.matches("<g>").count(), 24);
    }
}
