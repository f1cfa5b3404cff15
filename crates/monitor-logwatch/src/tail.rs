//! Following one path: the open file, the file it was rotated away from, line splitting,
//! matching and context. Synchronous and free of inotify, so every rule is testable with
//! plain file operations.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::access::{self, OpenError};
use crate::interface::{LogMatch, PatternSpec, ReadFrom, DEFAULT_FIRST_READ_LIMIT};
use crate::matching::{scan_chunk, ContextRing, LineSplitter, MatchCollector, Prefilter};
use monitor_source::FilePosition;
use monitor_wire::CheckId;

const READ_BUFFER_BYTES: usize = 256 * 1024;

thread_local! {
    /// One read buffer for every file a thread follows: the files are read one after
    /// another, and a buffer per file would keep 256 KiB resident for each file once a
    /// burst (or a first read of what it holds) had filled it: 5 MiB with 20 log files.
    static READ_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// `read` with the thread's read buffer (a new one if it is in use already).
fn with_read_buffer<T>(read: impl FnOnce(&mut [u8]) -> T) -> T {
    let mut buffer = READ_BUFFER.take();
    if buffer.is_empty() {
        buffer = vec![0; READ_BUFFER_BYTES];
    }
    let result = read(&mut buffer);
    READ_BUFFER.set(buffer);
    result
}
/// How many of the last bytes read are remembered to recognise a file that was truncated
/// and written again past the old size before we looked.
const FINGERPRINT_BYTES: usize = 32;

/// Where to begin following a path the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Continue where a checkpoint left off (same file, or the file it was rotated to);
    /// `seen_by` read every line before it already.
    Resume {
        position: FilePosition,
        seen_by: BTreeSet<CheckId>,
    },
    /// At the end of what the file holds now, which no check has read yet.
    End,
}

/// What one [`FileTail::poll`] produced.
#[derive(Debug, Default)]
pub struct PollOutcome {
    pub matches: Vec<LogMatch>,
    /// Whether any bytes were read.
    pub progressed: bool,
    /// The read budget ran out before the end of the file: poll again.
    pub more: bool,
    /// Whether the path can be followed changed since the last poll (or its checks did).
    pub problem: Option<ProblemChange>,
}

/// A path that cannot be followed, or no longer has that problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemChange {
    /// Why the path is not followed, with its fix: not a regular file, refused (a user who
    /// controls the path could not read the file themselves), or cannot be opened.
    Found(String),
    /// The path now opens (or names nothing yet): following resumed.
    Resolved,
}

/// An open file and how far it has been read.
#[derive(Debug)]
struct OpenFile {
    file: File,
    device: u64,
    inode: u64,
    /// Bytes consumed, including a trailing partial line.
    read_offset: u64,
    /// Offset just past the last complete line: where a restart resumes.
    line_offset: u64,
    /// Cuts what is read into lines and counts them.
    lines: LineSplitter,
    /// The last bytes read, ending at `read_offset`.
    fingerprint: Vec<u8>,
}

impl OpenFile {
    /// Only regular files that whoever controls `path` could read themselves; see
    /// [`access::open_log_file`].
    fn open(path: &Path) -> Result<OpenFile, OpenError> {
        let file = access::open_log_file(path)?;
        let metadata = file.metadata()?;
        Ok(OpenFile {
            file,
            device: metadata.dev(),
            inode: metadata.ino(),
            read_offset: 0,
            line_offset: 0,
            lines: LineSplitter::default(),
            fingerprint: Vec::new(),
        })
    }

    /// Whether the file was cut since the last read: it is shorter than what was read, or
    /// the bytes just before `read_offset` are not the ones read there (copytruncate, then
    /// writes that grew it back past the old size before we looked).
    fn was_truncated(&self) -> bool {
        if self.fingerprint.is_empty() {
            // Nothing read since opening or resuming: only the size can tell.
            return self
                .file
                .metadata()
                .is_ok_and(|metadata| metadata.len() < self.read_offset);
        }
        // One read answers both: a file now shorter than `read_offset` cannot give back
        // the bytes just before it.
        let mut now = [0; FINGERPRINT_BYTES];
        let now = &mut now[..self.fingerprint.len()];
        let start = self.read_offset - self.fingerprint.len() as u64;
        match self.file.read_exact_at(now, start) {
            Ok(()) => *now != *self.fingerprint,
            Err(_) => true,
        }
    }

    fn remember_fingerprint(&mut self, chunk: &[u8]) {
        if chunk.len() >= FINGERPRINT_BYTES {
            self.fingerprint.clear();
            self.fingerprint
                .extend_from_slice(&chunk[chunk.len() - FINGERPRINT_BYTES..]);
        } else {
            self.fingerprint.extend_from_slice(chunk);
            let excess = self.fingerprint.len().saturating_sub(FINGERPRINT_BYTES);
            self.fingerprint.drain(..excess);
        }
    }

    fn is(&self, metadata: &Metadata) -> bool {
        self.device == metadata.dev() && self.inode == metadata.ino()
    }

    fn seek_to(&mut self, offset: u64, line_number: u64) {
        self.read_offset = offset;
        self.line_offset = offset;
        self.lines.reset(line_number);
        self.fingerprint.clear();
    }

    fn position(&self) -> FilePosition {
        FilePosition {
            device: self.device,
            inode: self.inode,
            offset: self.line_offset,
            line_number: self.lines.line_number,
        }
    }

    /// Skip to the end of what is there now, counting its lines so numbers stay true.
    fn skip_to_end(&mut self, buffer: &mut [u8]) -> io::Result<()> {
        let mut offset = 0;
        let mut lines = 0;
        let mut last_newline_end = 0;
        loop {
            let count = self.file.read_at(buffer, offset)?;
            if count == 0 {
                break;
            }
            for index in memchr::memchr_iter(b'\n', &buffer[..count]) {
                lines += 1;
                last_newline_end = offset + index as u64 + 1;
            }
            offset += count as u64;
        }
        // A trailing partial line is finished by its writer later: resume at its start.
        self.seek_to(last_newline_end, lines);
        Ok(())
    }
}

/// Follows one path across rotation and truncation.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    checks: Vec<PatternSpec>,
    prefilter: Prefilter,
    current: Option<OpenFile>,
    /// The file the path pointed to before a rotation, drained until its writer moves on.
    retired: Option<OpenFile>,
    context: ContextRing,
    /// Why the path cannot be followed now: remembered so that one problem is reported
    /// once, not at every event.
    problem: Option<String>,
    /// A change of `problem` not yet handed out by [`FileTail::poll`].
    problem_change: Option<ProblemChange>,
    /// The checks that read every line before the position: the others have not, and
    /// only they read what is before it (see [`FileTail::poll`]).
    seen_by: BTreeSet<CheckId>,
    /// Checks new to the file that read what it holds before the position at the next poll.
    catching_up: Vec<PatternSpec>,
    /// How far back they read, in bytes.
    first_read_limit: u64,
}

impl FileTail {
    pub fn new(path: PathBuf, checks: Vec<PatternSpec>, start: Start) -> FileTail {
        let seen_by = match &start {
            Start::Resume { seen_by, .. } => seen_by.clone(),
            Start::End => BTreeSet::new(),
        };
        let mut tail = FileTail {
            path,
            checks: Vec::new(),
            prefilter: Prefilter::default(),
            current: None,
            retired: None,
            context: ContextRing::default(),
            problem: None,
            problem_change: None,
            seen_by,
            catching_up: Vec::new(),
            first_read_limit: DEFAULT_FIRST_READ_LIMIT,
        };
        tail.set_checks(checks);
        tail.begin(start);
        tail.prime_context();
        tail
    }

    /// Fill the context with the lines just before where reading starts, so the first
    /// match after a start or restart has its lines before too.
    fn prime_context(&mut self) {
        let Some(open) = self.retired.as_ref().or(self.current.as_ref()) else {
            return;
        };
        if self.context.capacity() == 0 || open.line_offset == 0 {
            return;
        }
        let window = open
            .line_offset
            .min((self.context.capacity() * 1024).max(64 * 1024) as u64);
        let start = open.line_offset - window;
        let mut block = vec![0; window as usize];
        if open.file.read_exact_at(&mut block, start).is_err() {
            return;
        }
        let mut lines: Vec<&[u8]> = block
            .strip_suffix(b"\n")
            .unwrap_or(&block)
            .split(|byte| *byte == b'\n')
            .collect();
        if start > 0 && !lines.is_empty() {
            // The first piece may be the end of a longer line.
            lines.remove(0);
        }
        let keep = lines.len().min(self.context.capacity());
        let first_number = (open.lines.line_number + 1)
            .saturating_sub(keep as u64)
            .max(1);
        for (index, line) in lines[lines.len() - keep..].iter().enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.context.push(first_number + index as u64, line);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checks from now on. A check the position does not cover yet reads the file
    /// from where its [`PatternSpec::from`] says; a check let go is forgotten, so it is
    /// new again if it comes back.
    pub fn set_checks(&mut self, checks: Vec<PatternSpec>) {
        // Checks that are new to the path learn of its problem too.
        if let Some(problem) = &self.problem {
            self.problem_change = Some(ProblemChange::Found(problem.clone()));
        }
        self.seen_by
            .retain(|seen| checks.iter().any(|check| check.check == *seen));
        self.catching_up.clear();
        for check in &checks {
            if self.seen_by.contains(&check.check) {
                continue;
            }
            match check.from {
                ReadFrom::End => {
                    self.seen_by.insert(check.check.clone());
                }
                ReadFrom::Start => self.catching_up.push(check.clone()),
            }
        }
        self.context.fit_to(&checks);
        self.prefilter = Prefilter::for_checks(&checks);
        self.checks = checks;
    }

    /// How far back a check new to the file reads what it holds, in bytes.
    pub fn set_first_read_limit(&mut self, bytes: u64) {
        self.first_read_limit = bytes;
    }

    /// The checks that [`FileTail::position`] covers: they read every line before it.
    pub fn seen_by(&self) -> &BTreeSet<CheckId> {
        &self.seen_by
    }

    /// The position a checkpoint should record, when a file is open.
    pub fn position(&self) -> Option<FilePosition> {
        self.current.as_ref().map(OpenFile::position)
    }

    fn begin(&mut self, start: Start) {
        let opened = self.open_current();
        match start {
            Start::End => {
                if let Some(current) = &mut self.current {
                    if let Err(error) = with_read_buffer(|buffer| current.skip_to_end(buffer)) {
                        tracing::warn!(path = %self.path.display(), %error, "cannot read to the end of the log file");
                    }
                }
            }
            Start::Resume { position, .. } => {
                let same_file = opened.as_ref().is_some_and(|current| {
                    current.device == position.device && current.inode == position.inode
                });
                if same_file {
                    self.resume_current(position);
                } else if let Some(rotated) = self.find_rotated(&position) {
                    // Rotated while we were down: finish the old file, then the new one from its start.
                    tracing::info!(path = %self.path.display(), rotated = %rotated.display(), "log was rotated while the agent was down; reading the rest of the old file first");
                    match OpenFile::open(&rotated) {
                        Ok(mut old) => {
                            old.seek_to(position.offset, position.line_number);
                            self.retired = Some(old);
                        }
                        Err(error) => {
                            tracing::warn!(
                                "{}; its lines written while the agent was down are not read",
                                error.message(&rotated)
                            )
                        }
                    }
                }
            }
        }
    }

    fn resume_current(&mut self, position: FilePosition) {
        let Some(current) = &mut self.current else {
            return;
        };
        let size = current
            .file
            .metadata()
            .map(|metadata| metadata.len())
            .unwrap_or(0);
        if size >= position.offset {
            current.seek_to(position.offset, position.line_number);
        } else {
            tracing::info!(path = %self.path.display(), "log was truncated while the agent was down; reading it from the start");
        }
    }

    /// A file in the same folder whose name starts with ours and that is the checkpointed file.
    fn find_rotated(&self, position: &FilePosition) -> Option<PathBuf> {
        let directory = self.path.parent()?;
        let name = self.path.file_name()?.to_string_lossy().into_owned();
        std::fs::read_dir(directory)
            .ok()?
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(&name))
            .find(|entry| {
                entry.metadata().is_ok_and(|metadata| {
                    metadata.dev() == position.device && metadata.ino() == position.inode
                })
            })
            .map(|entry| entry.path())
    }

    fn open_current(&mut self) -> Option<&OpenFile> {
        let opened = OpenFile::open(&self.path);
        let problem = match &opened {
            Err(error) if !error.is_not_found() => Some(error.message(&self.path)),
            _ => None,
        };
        if problem != self.problem {
            match &problem {
                Some(message) => {
                    tracing::warn!(path = %self.path.display(), "{message}; waiting for the path to change");
                    self.problem_change = Some(ProblemChange::Found(message.clone()));
                }
                None => {
                    tracing::info!(path = %self.path.display(), "the log file can be followed again");
                    self.problem_change = Some(ProblemChange::Resolved);
                }
            }
            self.problem = problem;
        }
        self.current = opened.ok();
        self.current.as_ref()
    }

    /// Read what is new, up to about `budget` bytes, following rotation and truncation.
    pub fn poll(&mut self, budget: usize) -> PollOutcome {
        with_read_buffer(|buffer| self.poll_with(budget, buffer))
    }

    fn poll_with(&mut self, budget: usize, buffer: &mut [u8]) -> PollOutcome {
        let mut outcome = PollOutcome::default();
        // Moved out for the poll so the collector can borrow them while `self` changes.
        let checks = std::mem::take(&mut self.checks);
        let prefilter = std::mem::take(&mut self.prefilter);
        let path = self.path.clone();
        let source = path.display();
        let mut collector = MatchCollector::new(&checks, &prefilter, &source);
        let mut budget_left = budget;
        let mut retired_bytes = 0;

        if let Some(retired) = &mut self.retired {
            let read = read_lines(
                retired,
                &self.path,
                buffer,
                &mut budget_left,
                &mut self.context,
                &mut collector,
            );
            retired_bytes = read.bytes;
            outcome.progressed |= read.bytes > 0;
            outcome.more |= read.more;
            let finished = match read.result {
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "cannot read the rotated log file; leaving it");
                    true
                }
                // Deleted: nobody can write to it any more.
                Ok(()) => {
                    !read.more
                        && retired
                            .file
                            .metadata()
                            .is_ok_and(|metadata| metadata.nlink() == 0)
                }
            };
            if finished {
                flush_partial(retired, &mut self.context, &mut collector);
                self.retired = None;
            }
        }

        if self.current.is_none() {
            // The path appeared (or became readable): everything in it is new.
            self.open_current();
        }
        if let Some(current) = &mut self.current {
            if current.was_truncated() {
                tracing::info!(path = %self.path.display(), "log file was truncated; reading it from the start");
                current.seek_to(0, 0);
                self.context.clear();
            }
            if !self.catching_up.is_empty() {
                match read_before(
                    current,
                    &self.path,
                    &self.catching_up,
                    self.first_read_limit,
                    buffer,
                ) {
                    Ok(found) => outcome.matches.extend(found),
                    Err(error) => {
                        tracing::warn!(path = %self.path.display(), %error, "cannot read what the log file held for its new checks; they read what comes from now on")
                    }
                }
            }
            let read = read_lines(
                current,
                &self.path,
                buffer,
                &mut budget_left,
                &mut self.context,
                &mut collector,
            );
            outcome.progressed |= read.bytes > 0;
            outcome.more |= read.more;
            if let Err(error) = read.result {
                tracing::warn!(path = %self.path.display(), %error, "cannot read the log file");
            }
            if !read.more {
                self.follow_path_change(&mut collector, &mut outcome, retired_bytes);
            }
        }
        // Read what was before the position for them, or nothing was there (no file: it
        // is read from its start by every check once it appears).
        self.seen_by
            .extend(self.catching_up.drain(..).map(|check| check.check));
        outcome.matches.extend(collector.into_matches());
        outcome.problem = self.problem_change.take();
        self.checks = checks;
        self.prefilter = prefilter;
        outcome
    }

    /// After draining the open file: has the path moved on to another file?
    fn follow_path_change(
        &mut self,
        collector: &mut MatchCollector<'_>,
        outcome: &mut PollOutcome,
        retired_bytes: u64,
    ) {
        let Some(current) = &mut self.current else {
            return;
        };
        let moved = match std::fs::metadata(&self.path) {
            Ok(metadata) => !current.is(&metadata),
            Err(_) => true,
        };
        if !moved {
            // Once writers have moved to the new file and the old one is quiet, let go of it.
            if current.read_offset > 0 && retired_bytes == 0 {
                if let Some(mut retired) = self.retired.take() {
                    flush_partial(&mut retired, &mut self.context, collector);
                }
            }
            return;
        }
        let Some(mut old) = self.current.take() else {
            return;
        };
        let deleted = old
            .file
            .metadata()
            .is_ok_and(|metadata| metadata.nlink() == 0);
        if deleted {
            tracing::info!(path = %self.path.display(), "log file was deleted; waiting for it to be created again");
            flush_partial(&mut old, &mut self.context, collector);
        } else {
            tracing::info!(path = %self.path.display(), "log file was rotated; following the new file");
            if let Some(mut previous) = self.retired.replace(old) {
                flush_partial(&mut previous, &mut self.context, collector);
            }
        }
        if self.open_current().is_some() {
            outcome.more = true;
        }
    }
}

/// The lines before `open`'s position, matched for `checks` only (checks new to the file,
/// which have not read them): at most `limit` bytes, from the first whole line in them.
/// A match's lines after may run past the position, as far as the file is written now.
fn read_before(
    open: &OpenFile,
    path: &Path,
    checks: &[PatternSpec],
    limit: u64,
    buffer: &mut [u8],
) -> io::Result<Vec<LogMatch>> {
    let end = open.line_offset;
    let mut start = end.saturating_sub(limit);
    if start > 0 {
        // The byte before the window ends a line, or the window begins mid-line.
        let Some(newline) = find_newline(&open.file, start - 1, end, buffer)? else {
            return Ok(Vec::new());
        };
        start = newline + 1;
    }
    // Counted first, so the lines carry their numbers in the file.
    let mut lines_in_window = 0;
    let mut offset = start;
    while offset < end {
        let want = buffer
            .len()
            .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        let count = read_some_at(&open.file, &mut buffer[..want], offset)?;
        if count == 0 {
            break;
        }
        lines_in_window += memchr::memchr_iter(b'\n', &buffer[..count]).count() as u64;
        offset += count as u64;
    }
    let mut lines = LineSplitter::default();
    lines.reset(open.lines.line_number.saturating_sub(lines_in_window));
    let mut context = ContextRing::default();
    context.fit_to(checks);
    let prefilter = Prefilter::for_checks(checks);
    let source = path.display();
    let mut collector = MatchCollector::new(checks, &prefilter, &source);
    offset = start;
    while offset < end {
        let want = buffer
            .len()
            .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        let count = read_some_at(&open.file, &mut buffer[..want], offset)?;
        if count == 0 {
            break;
        }
        scan_chunk(
            &mut lines,
            &mut context,
            &mut collector,
            &buffer[..count],
            &source,
            |_, _| true,
        );
        offset += count as u64;
    }
    // Lines after a match near the position: those written already, matched by nobody
    // here (every check reads them next, from the position).
    collector.stop_matching();
    let size = open.file.metadata()?.len().min(end.saturating_add(limit));
    while collector.is_awaiting_after() && offset < size {
        let want = buffer
            .len()
            .min(usize::try_from(size - offset).unwrap_or(usize::MAX));
        let count = read_some_at(&open.file, &mut buffer[..want], offset)?;
        if count == 0 {
            break;
        }
        lines.feed(&buffer[..count], &source, |number, line, _| {
            collector.line(&mut context, number, line);
            collector.is_awaiting_after()
        });
        offset += count as u64;
    }
    Ok(collector.into_matches())
}

/// The offset of the first newline in `file` from `from` on, before `end`.
fn find_newline(file: &File, from: u64, end: u64, buffer: &mut [u8]) -> io::Result<Option<u64>> {
    let mut offset = from;
    while offset < end {
        let want = buffer
            .len()
            .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        let count = read_some_at(file, &mut buffer[..want], offset)?;
        if count == 0 {
            break;
        }
        if let Some(index) = memchr::memchr(b'\n', &buffer[..count]) {
            return Ok(Some(offset + index as u64));
        }
        offset += count as u64;
    }
    Ok(None)
}

fn read_some_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buffer, offset) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

struct ReadResult {
    bytes: u64,
    more: bool,
    result: io::Result<()>,
}

fn read_lines(
    open: &mut OpenFile,
    path: &Path,
    buffer: &mut [u8],
    budget_left: &mut usize,
    context: &mut ContextRing,
    collector: &mut MatchCollector<'_>,
) -> ReadResult {
    let mut total = 0;
    // Never past the size the file has now: a file that reads on forever (a pseudo-file)
    // cannot hold the watcher, and the path is looked at again after every poll.
    let end = match open.file.metadata() {
        Ok(metadata) => metadata.len(),
        Err(error) => {
            return ReadResult {
                bytes: 0,
                more: false,
                result: Err(error),
            }
        }
    };
    loop {
        if open.read_offset >= end {
            return ReadResult {
                bytes: total,
                more: false,
                result: Ok(()),
            };
        }
        if *budget_left == 0 {
            return ReadResult {
                bytes: total,
                more: true,
                result: Ok(()),
            };
        }
        let want = buffer
            .len()
            .min(*budget_left)
            .min(usize::try_from(end - open.read_offset).unwrap_or(usize::MAX));
        let count = match open.file.read_at(&mut buffer[..want], open.read_offset) {
            Ok(0) => {
                return ReadResult {
                    bytes: total,
                    more: false,
                    result: Ok(()),
                }
            }
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return ReadResult {
                    bytes: total,
                    more: false,
                    result: Err(error),
                }
            }
        };
        *budget_left = budget_left.saturating_sub(count);
        total += count as u64;
        consume(open, path, &buffer[..count], context, collector);
        if count < want {
            // A regular file reads short only at its end: no need to ask again. (A write
            // landing right after is another inotify event.)
            return ReadResult {
                bytes: total,
                more: false,
                result: Ok(()),
            };
        }
    }
}

/// Split new bytes into lines, joining the partial line left from the last read.
fn consume(
    open: &mut OpenFile,
    path: &Path,
    chunk: &[u8],
    context: &mut ContextRing,
    collector: &mut MatchCollector<'_>,
) {
    let chunk_offset = open.read_offset;
    let line_offset = &mut open.line_offset;
    scan_chunk(
        &mut open.lines,
        context,
        collector,
        chunk,
        &path.display(),
        |end, _| {
            *line_offset = chunk_offset + end as u64;
            true
        },
    );
    open.read_offset += chunk.len() as u64;
    open.remember_fingerprint(chunk);
}

/// A file that will not grow any more: its unfinished last line is a line.
fn flush_partial(
    open: &mut OpenFile,
    context: &mut ContextRing,
    collector: &mut MatchCollector<'_>,
) {
    if open
        .lines
        .flush(|number, line| collector.line(context, number, line))
    {
        open.line_offset = open.read_offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_wire::{CheckId, Subsystem};
    use regex::bytes::Regex;

    fn tail_of(path: &Path) -> FileTail {
        let checks = vec![PatternSpec {
            check: CheckId::new(Subsystem::Log, "errors"),
            regex: Regex::new("ERROR").unwrap(),
            lines_before: 1,
            lines_after: 0,
            details: Default::default(),
            from: ReadFrom::Start,
        }];
        FileTail::new(path.to_path_buf(), checks, Start::End)
    }

    fn lines(outcome: &PollOutcome) -> Vec<(&str, u64)> {
        outcome
            .matches
            .iter()
            .map(|found| (found.line.data.as_str(), found.line.line_number))
            .collect()
    }

    fn check(name: &str, lines_after: usize) -> PatternSpec {
        PatternSpec {
            check: CheckId::new(Subsystem::Log, name),
            regex: Regex::new("ERROR").unwrap(),
            lines_before: 1,
            lines_after,
            details: Default::default(),
            from: ReadFrom::Start,
        }
    }

    #[test]
    fn a_window_that_starts_on_a_line_boundary_keeps_that_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "ERROR   1\nERROR   2\nERROR   3\n").unwrap();
        let mut tail = FileTail::new(path.clone(), vec![check("new", 0)], Start::End);
        tail.set_first_read_limit(20);
        assert_eq!(
            lines(&tail.poll(1 << 20)),
            vec![("ERROR   2", 2), ("ERROR   3", 3)]
        );
        assert!(tail
            .seen_by()
            .contains(&CheckId::new(Subsystem::Log, "new")));
        assert_eq!(tail.poll(1 << 20).matches, vec![]);
    }

    /// The lines after an old match may be past the position; a partial line there is
    /// not one, and every check reads it once it is complete.
    #[test]
    fn a_first_read_takes_lines_after_from_past_the_position_and_leaves_them_to_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "ERROR old\n").unwrap();
        let mut tail = FileTail::new(path.clone(), vec![check("first", 0)], Start::End);
        assert_eq!(lines(&tail.poll(1 << 20)), vec![("ERROR old", 1)]);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"next\npart").unwrap();
        assert_eq!(tail.poll(1 << 20).matches, vec![]);

        tail.set_checks(vec![check("first", 0), check("second", 3)]);
        let outcome = tail.poll(1 << 20);
        assert_eq!(lines(&outcome), vec![("ERROR old", 1)]);
        assert_eq!(outcome.matches[0].check.name, "second");
        let after: Vec<_> = outcome.matches[0]
            .after
            .iter()
            .map(|line| line.data.as_str())
            .collect();
        assert_eq!(after, vec!["next"]);

        std::io::Write::write_all(&mut file, b"ial ERROR\n").unwrap();
        let outcome = tail.poll(1 << 20);
        let mut checks: Vec<_> = outcome
            .matches
            .iter()
            .map(|found| {
                (
                    found.check.name.as_str(),
                    found.line.data.as_str(),
                    found.line.line_number,
                )
            })
            .collect();
        checks.sort();
        assert_eq!(
            checks,
            vec![
                ("first", "partial ERROR", 3),
                ("second", "partial ERROR", 3)
            ]
        );
    }

    #[test]
    fn a_file_cut_and_rewritten_to_the_same_size_between_two_reads_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "").unwrap();
        let mut tail = tail_of(&path);
        std::fs::write(&path, "ERROR one\n").unwrap();
        assert_eq!(lines(&tail.poll(1 << 20)), vec![("ERROR one", 1)]);
        // Same inode, same size, other bytes: only the fingerprint can tell.
        std::fs::write(&path, "ERROR two\n").unwrap();
        assert_eq!(lines(&tail.poll(1 << 20)), vec![("ERROR two", 1)]);
        assert_eq!(tail.poll(1 << 20).matches, vec![]);
    }

    #[test]
    fn a_partial_line_is_held_until_its_end_arrives_and_positions_stay_on_line_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old\n").unwrap();
        let mut tail = tail_of(&path);
        assert_eq!(tail.position().unwrap().offset, 4);
        assert_eq!(tail.position().unwrap().line_number, 1);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"ERR").unwrap();
        assert!(tail.poll(1 << 20).matches.is_empty());
        assert_eq!(tail.position().unwrap().offset, 4);
        std::io::Write::write_all(&mut file, b"OR\n").unwrap();
        let outcome = tail.poll(1 << 20);
        assert_eq!(lines(&outcome), vec![("ERROR", 2)]);
        assert_eq!(outcome.matches[0].before[0].data, "old");
        assert_eq!(tail.position().unwrap().offset, 10);
    }
}
