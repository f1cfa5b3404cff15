//! What file tails and command sources share: splitting bytes into capped lines, matching
//! each line against the checks, and the context kept around a match.

use std::collections::VecDeque;
use std::fmt::Display;

use monitor_wire::LogLine;

use crate::tail::{ALERT_LINE_BYTES, MAX_LINE_BYTES};
use crate::{LogMatch, PatternSpec};

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
    /// The file or command the lines come from, for logs.
    source: &'a (dyn Display + Sync),
    matches: Vec<LogMatch>,
    /// (index into matches, lines after still wanted)
    awaiting_after: Vec<(usize, usize)>,
}

impl<'a> MatchCollector<'a> {
    pub(crate) fn new(checks: &'a [PatternSpec], source: &'a (dyn Display + Sync)) -> Self {
        MatchCollector {
            checks,
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
