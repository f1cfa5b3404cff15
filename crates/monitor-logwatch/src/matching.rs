//! What file tails and command sources share: splitting bytes into capped lines, matching
//! each line against the checks, and the context kept around a match.

use std::collections::VecDeque;
use std::fmt::Display;

use monitor_wire::LogLine;

use regex::bytes::{Regex, RegexBuilder};

use crate::interface::{LogMatch, PatternSpec};

/// Lines longer than this are matched on their first `MAX_LINE_BYTES` only.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Lines carried in an alert (matching and context) are cut to this many bytes.
pub const ALERT_LINE_BYTES: usize = 4096;

/// Every check's pattern in one regex, run over a whole read instead of line by line: it
/// finds the next line where some check may match, and the lines before it are jumped over
/// in bulk (counted, and their last few kept as context). Each line it finds is then
/// matched line by line, as always, so it only decides where to look, never what matches.
///
/// Per line, a pattern sees the line without its newline (and `\r`); over a whole read,
/// with `(?m)`, `^` and `$` still match at each line's start and end, and a match that runs
/// across a newline can only start early, which the line-by-line check then rejects. Where
/// the two views could disagree there is no prefilter: `\A` and `\z`, inline flags that
/// change lines or spacing (`m`, `R`, `x`, or turning a flag off), and `$` in a read that
/// holds a `\r` (the line-by-line view strips it before the newline).
#[derive(Debug, Default)]
pub(crate) struct Prefilter {
    regex: Option<Regex>,
    /// Some pattern has `$`: reads with a `\r` go line by line.
    needs_no_carriage_return: bool,
}

impl Prefilter {
    pub(crate) fn for_checks(checks: &[PatternSpec]) -> Prefilter {
        let none = Prefilter::default();
        let mut alternatives = Vec::with_capacity(checks.len());
        for check in checks {
            let pattern = check.regex.as_str();
            if pattern.contains("\\A") || pattern.contains("\\z") || changes_lines(pattern) {
                return none;
            }
            alternatives.push(format!("(?:{pattern})"));
        }
        if alternatives.is_empty() {
            return none;
        }
        let combined = format!("(?m){}", alternatives.join("|"));
        Prefilter {
            regex: RegexBuilder::new(&combined).build().ok(),
            needs_no_carriage_return: checks
                .iter()
                .any(|check| check.regex.as_str().contains('$')),
        }
    }

    /// The regex to jump with over `bytes`, if it can be trusted there.
    fn usable_on(&self, bytes: &[u8]) -> Option<&Regex> {
        let regex = self.regex.as_ref()?;
        if self.needs_no_carriage_return && memchr::memchr(b'\r', bytes).is_some() {
            return None;
        }
        Some(regex)
    }
}

/// Whether an inline flag group (`(?flags)` or `(?flags:...)`) touches multi-line, CRLF or
/// verbose mode, or turns a flag off.
fn changes_lines(pattern: &str) -> bool {
    pattern.match_indices("(?").any(|(index, _)| {
        pattern[index + 2..]
            .chars()
            .take_while(|flag| *flag != ':' && *flag != ')')
            .any(|flag| matches!(flag, 'm' | 'R' | 'x' | '-'))
    })
}

/// A small ring of recent lines, reusing its buffers.
#[derive(Debug, Default)]
pub(crate) struct ContextRing {
    lines: VecDeque<(u64, Vec<u8>)>,
    capacity: usize,
}

impl ContextRing {
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keep as many lines as the most demanding check wants before its match.
    pub(crate) fn fit_to(&mut self, checks: &[PatternSpec]) {
        self.capacity = checks
            .iter()
            .map(|check| check.lines_before)
            .max()
            .unwrap_or(0);
        while self.lines.len() > self.capacity {
            self.lines.pop_front();
        }
    }

    pub(crate) fn push(&mut self, number: u64, bytes: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        // One byte more than an alert shows, so the line is still known to be cut.
        let kept = &bytes[..bytes.len().min(ALERT_LINE_BYTES + 1)];
        let mut buffer = if self.lines.len() >= self.capacity {
            self.lines
                .pop_front()
                .map(|(_, buffer)| buffer)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        buffer.clear();
        buffer.extend_from_slice(kept);
        self.lines.push_back((number, buffer));
    }

    /// Keep the last lines of `run` (whole lines, each with its newline), the last one
    /// being line `last_number`.
    fn push_last_lines(&mut self, run: &[u8], last_number: u64) {
        let mut end = run.len();
        let mut starts = Vec::with_capacity(self.capacity);
        while starts.len() < self.capacity && end > 0 {
            let start = memchr::memrchr(b'\n', &run[..end - 1]).map_or(0, |index| index + 1);
            starts.push((start, end));
            end = start;
        }
        let first_number = last_number + 1 - starts.len() as u64;
        for (index, (start, end)) in starts.into_iter().rev().enumerate() {
            let line = &run[start..end - 1];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = &line[..line.len().min(MAX_LINE_BYTES)];
            self.push(first_number + index as u64, line);
        }
    }

    fn last(&self, count: usize) -> Vec<LogLine> {
        let skip = self.lines.len().saturating_sub(count);
        self.lines
            .iter()
            .skip(skip)
            .map(|(number, bytes)| log_line(*number, bytes))
            .collect()
    }

    pub(crate) fn clear(&mut self) {
        self.lines.clear();
    }
}

fn log_line(line_number: u64, bytes: &[u8]) -> LogLine {
    let kept = &bytes[..bytes.len().min(ALERT_LINE_BYTES)];
    let mut data = String::from_utf8_lossy(kept).into_owned();
    if bytes.len() > ALERT_LINE_BYTES {
        data.push('…');
    }
    LogLine { line_number, data }
}

/// Everything matched in one read, with lines after each match as they arrive.
pub(crate) struct MatchCollector<'a> {
    checks: &'a [PatternSpec],
    prefilter: &'a Prefilter,
    /// The file or command the lines come from, for logs.
    source: &'a (dyn Display + Sync),
    matches: Vec<LogMatch>,
    /// (index into matches, lines after still wanted)
    awaiting_after: Vec<(usize, usize)>,
}

impl<'a> MatchCollector<'a> {
    pub(crate) fn new(
        checks: &'a [PatternSpec],
        prefilter: &'a Prefilter,
        source: &'a (dyn Display + Sync),
    ) -> Self {
        MatchCollector {
            checks,
            prefilter,
            source,
            matches: Vec::new(),
            awaiting_after: Vec::new(),
        }
    }

    pub(crate) fn match_count(&self) -> usize {
        self.matches.len()
    }

    /// Whether some match still wants lines after it.
    pub(crate) fn is_awaiting_after(&self) -> bool {
        !self.awaiting_after.is_empty()
    }

    /// From now on lines only complete the lines after earlier matches.
    pub(crate) fn stop_matching(&mut self) {
        self.checks = &[];
    }

    pub(crate) fn into_matches(self) -> Vec<LogMatch> {
        self.matches
    }

    pub(crate) fn line(&mut self, context: &mut ContextRing, number: u64, line: &[u8]) {
        let mut line = line.strip_suffix(b"\n").unwrap_or(line);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        if !self.awaiting_after.is_empty() {
            for (index, wanted) in &mut self.awaiting_after {
                if *wanted > 0 {
                    self.matches[*index].after.push(log_line(number, line));
                    *wanted -= 1;
                }
            }
            self.awaiting_after.retain(|(_, wanted)| *wanted > 0);
        }
        for check in self.checks {
            if check.regex.is_match(line) {
                tracing::debug!(check = %check.check, source = %self.source, line = number, "pattern matched");
                self.matches.push(LogMatch {
                    check: check.check.clone(),
                    line: log_line(number, line),
                    before: context.last(check.lines_before),
                    after: Vec::new(),
                    details: check.details.clone(),
                });
                if check.lines_after > 0 {
                    self.awaiting_after
                        .push((self.matches.len() - 1, check.lines_after));
                }
            }
        }
        context.push(number, line);
    }
}

/// Cut `chunk` into lines and match them, as [`LineSplitter::feed`] with
/// [`MatchCollector::line`] would, but jumping over the lines in which the prefilter finds
/// nothing. `line_done(end, collector)` is told where each handled line (or jumped run of
/// lines) ends in `chunk`; when it returns `false` the rest is left alone. Returns the bytes
/// consumed, as `feed` does.
pub(crate) fn scan_chunk(
    lines: &mut LineSplitter,
    context: &mut ContextRing,
    collector: &mut MatchCollector<'_>,
    chunk: &[u8],
    source: &dyn Display,
    mut line_done: impl FnMut(usize, &MatchCollector<'_>) -> bool,
) -> usize {
    let Some(jumper) = collector.prefilter.usable_on(chunk) else {
        // No jumping here: every line the ordinary way.
        return lines.feed(chunk, source, |number, line, end| {
            collector.line(context, number, line);
            line_done(end, collector)
        });
    };
    let mut position = 0;
    while position < chunk.len() {
        let rest = &chunk[position..];
        if !lines.has_partial() && !collector.is_awaiting_after() {
            let Some(last_newline) = memchr::memrchr(b'\n', rest) else {
                // A line still being written: kept for the next chunk.
                lines.feed(rest, source, |_, _, _| true);
                return chunk.len();
            };
            let complete = &rest[..=last_newline];
            let run_end = jumper.find(complete).map_or(complete.len(), |found| {
                memchr::memrchr(b'\n', &complete[..found.start()]).map_or(0, |index| index + 1)
            });
            if run_end > 0 {
                let run = &complete[..run_end];
                lines.jump(run, source);
                context.push_last_lines(run, lines.line_number);
                position += run_end;
                if !line_done(position, collector) {
                    return position;
                }
            }
            if run_end == complete.len() {
                continue;
            }
        }
        // One line the ordinary way: where something may match, a line begun in an earlier
        // chunk, or a line wanted after a match.
        let line = memchr::memchr(b'\n', &chunk[position..]).map_or(&chunk[position..], |index| {
            &chunk[position..=position + index]
        });
        let mut go_on = true;
        let start = position;
        position += lines.feed(line, source, |number, line, end| {
            collector.line(context, number, line);
            go_on = line_done(start + end, collector);
            go_on
        });
        if !go_on {
            return position;
        }
    }
    chunk.len()
}

/// Cuts a byte stream into lines, joining a line split across reads and capping each line
/// at [`MAX_LINE_BYTES`] so that no input grows memory.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
    partial_truncated: bool,
    /// Number of the last complete line.
    pub(crate) line_number: u64,
}

impl LineSplitter {
    /// Forget any partial line; the next line is `line_number + 1`.
    pub(crate) fn reset(&mut self, line_number: u64) {
        self.line_number = line_number;
        self.partial.clear();
        self.partial_truncated = false;
    }

    /// Hand each complete line in `chunk` (with its newline) to `on_line(number, line, end)`,
    /// `end` being the index in `chunk` just past it. When `on_line` returns `false` the
    /// rest of the chunk is left alone and the number of bytes consumed is returned;
    /// otherwise a trailing partial line is kept for the next chunk and the whole chunk
    /// counts as consumed.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        source: &dyn Display,
        mut on_line: impl FnMut(u64, &[u8], usize) -> bool,
    ) -> usize {
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            let end = newline + 1;
            self.line_number += 1;
            let go_on = if self.partial.is_empty() && !self.partial_truncated {
                let line = &chunk[start..end];
                let line = if line.len() > MAX_LINE_BYTES {
                    warn_long_line(source, self.line_number);
                    &line[..MAX_LINE_BYTES]
                } else {
                    line
                };
                on_line(self.line_number, line, end)
            } else {
                self.append_capped(source, &chunk[start..end]);
                let line = std::mem::take(&mut self.partial);
                let go_on = on_line(self.line_number, &line, end);
                self.partial = line;
                self.partial.clear();
                self.partial_truncated = false;
                go_on
            };
            start = end;
            if !go_on {
                return end;
            }
        }
        if start < chunk.len() {
            self.append_capped(source, &chunk[start..]);
        }
        chunk.len()
    }

    /// Whether a line begun in an earlier chunk awaits its end.
    pub(crate) fn has_partial(&self) -> bool {
        !self.partial.is_empty() || self.partial_truncated
    }

    /// Count the whole lines in `run` (no partial line pending) without handing them out,
    /// warning about over-long ones as `feed` does.
    ///
    /// Counted in bulk, a window of [`MAX_LINE_BYTES`] at a time, not line by line: a call
    /// per line costs more than the counting (a 300 MB log has 3 million lines). Every line
    /// ending inside a window that starts on a line start is short enough; only a window
    /// without a newline starts an over-long line.
    fn jump(&mut self, run: &[u8], source: &dyn Display) {
        self.jump_reporting(run, |line_number| warn_long_line(source, line_number));
    }

    /// [`LineSplitter::jump`], telling `over_long` the number of each over-long line.
    fn jump_reporting(&mut self, run: &[u8], mut over_long: impl FnMut(u64)) {
        debug_assert!(run.is_empty() || run.ends_with(b"\n"));
        let mut start = 0;
        while start < run.len() {
            let window_end = run.len().min(start + MAX_LINE_BYTES);
            match memchr::memrchr(b'\n', &run[start..window_end]) {
                Some(last_newline) => {
                    let end = start + last_newline + 1;
                    self.line_number += memchr::memchr_iter(b'\n', &run[start..end]).count() as u64;
                    start = end;
                }
                None => {
                    // `run` ends with a newline, so this line ends after the window.
                    self.line_number += 1;
                    over_long(self.line_number);
                    start = memchr::memchr(b'\n', &run[window_end..])
                        .map_or(run.len(), |index| window_end + index + 1);
                }
            }
        }
    }

    /// The stream ended: its unfinished last line is a line.
    pub(crate) fn flush(&mut self, on_line: impl FnOnce(u64, &[u8])) -> bool {
        if self.partial.is_empty() {
            return false;
        }
        self.line_number += 1;
        let line = std::mem::take(&mut self.partial);
        on_line(self.line_number, &line);
        self.partial = line;
        self.partial.clear();
        self.partial_truncated = false;
        true
    }

    fn append_capped(&mut self, source: &dyn Display, bytes: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
        if bytes.len() > room {
            if !self.partial_truncated {
                warn_long_line(source, self.line_number + 1);
            }
            self.partial_truncated = true;
        }
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn warn_long_line(source: &dyn Display, line_number: u64) {
    tracing::warn!(%source, line = line_number, limit = MAX_LINE_BYTES, "line is longer than the limit; matching its beginning only");
}

#[cfg(test)]
mod tests {
    use monitor_wire::{CheckId, Subsystem};
    use proptest::prelude::*;

    use super::*;
    use crate::interface::ReadFrom;

    fn checks(patterns: &[&str]) -> Vec<PatternSpec> {
        patterns
            .iter()
            .enumerate()
            .map(|(index, pattern)| PatternSpec {
                check: CheckId::new(Subsystem::Log, format!("check{index}")),
                regex: Regex::new(pattern).unwrap(),
                lines_before: index % 3,
                lines_after: (index + 1) % 3,
                details: Default::default(),
                from: ReadFrom::Start,
            })
            .collect()
    }

    /// Every match (with its lines before and after) from `chunks` fed one after another.
    fn scan(checks: &[PatternSpec], prefilter: &Prefilter, chunks: &[&[u8]]) -> Vec<LogMatch> {
        let mut lines = LineSplitter::default();
        let mut context = ContextRing::default();
        context.fit_to(checks);
        let mut all = Vec::new();
        for chunk in chunks {
            let mut collector = MatchCollector::new(checks, prefilter, &"test");
            let consumed = scan_chunk(
                &mut lines,
                &mut context,
                &mut collector,
                chunk,
                &"test",
                |_, _| true,
            );
            assert_eq!(consumed, chunk.len());
            all.extend(collector.into_matches());
        }
        all
    }

    const PATTERNS: &[&str] = &[
        "ERROR",
        "^b",
        "a\\s+b",
        "[^a]E",
        "R+O",
        "\\bab\\b",
        "x*",
        "E.R",
        "b$",
        "(?i)e\\s*r",
        "^$",
    ];

    proptest! {
        /// Jumping over lines is only a shortcut: the matches, their line numbers and their
        /// context are those of matching every line, however the stream is cut into reads.
        #[test]
        fn the_prefilter_finds_exactly_what_line_by_line_matching_finds(
            text in "(ERROR|ab|a b|E|R|O|b|\r|\n|x){0,120}",
            cuts in proptest::collection::vec(0usize..200, 0..6),
            chosen in proptest::sample::subsequence(PATTERNS.to_vec(), 1..4),
        ) {
            let checks = checks(&chosen);
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                chunks.push(&bytes[start..cut]);
                start = cut;
            }
            let line_by_line = scan(&checks, &Prefilter::default(), &chunks);
            let prefiltered = scan(&checks, &Prefilter::for_checks(&checks), &chunks);
            prop_assert_eq!(prefiltered, line_by_line);
        }
    }

    proptest! {
        /// Counting a jumped run in bulk finds the line numbers and the over-long lines
        /// that going newline by newline finds.
        #[test]
        fn jumping_counts_lines_and_finds_over_long_ones_like_going_line_by_line(
            lengths in proptest::collection::vec(
                prop_oneof![0usize..200, MAX_LINE_BYTES - 2..MAX_LINE_BYTES + 2, MAX_LINE_BYTES..3 * MAX_LINE_BYTES],
                0..8,
            ),
        ) {
            let mut run = Vec::new();
            let mut expected_long = Vec::new();
            for (index, length) in lengths.iter().enumerate() {
                run.extend(std::iter::repeat_n(b'x', *length));
                run.push(b'\n');
                if length + 1 > MAX_LINE_BYTES {
                    expected_long.push(10 + index as u64 + 1);
                }
            }
            let mut lines = LineSplitter::default();
            lines.reset(10);
            let mut long = Vec::new();
            lines.jump_reporting(&run, |number| long.push(number));
            prop_assert_eq!(lines.line_number, 10 + lengths.len() as u64);
            prop_assert_eq!(long, expected_long);
        }
    }

    #[test]
    fn patterns_that_read_differently_over_a_whole_read_get_no_prefilter() {
        for usable in ["b", "(?i)error", "^BENCH-END$", "(?i:warn)"] {
            let prefilter = Prefilter::for_checks(&checks(&["ERROR", usable]));
            assert!(prefilter.usable_on(b"line\n").is_some(), "{usable}");
        }
        for risky in [
            "\\Astart", "end\\z", "(?-m)^a", "(?x) a b", "(?R)a$", "(?m:a)",
        ] {
            let prefilter = Prefilter::for_checks(&checks(&["ERROR", risky]));
            assert!(prefilter.usable_on(b"line\n").is_none(), "{risky}");
        }
        let dollar = Prefilter::for_checks(&checks(&["done$"]));
        assert!(dollar.usable_on(b"not yet\ndone\n").is_some());
        assert!(dollar.usable_on(b"not yet\r\ndone\r\n").is_none());
    }
}
