//! The agent's own log lines go to stderr through a bounded queue and a writer thread, so a
//! stderr that does not keep up (a pipe nobody reads, a stalled journald) never blocks the
//! runtime thread: the agent keeps raising alerts and answering requests while its log waits.
//!
//! When the queue is full, lines are dropped and counted; once the writer has written what
//! was queued before them, it writes one line saying how many were lost. Nothing else in the
//! agent writes to stderr while it runs.

use std::collections::VecDeque;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Lines waiting for stderr at most: a few hundred kilobytes on a Pi, and more than a burst
/// of debug logging at startup.
pub const QUEUE_CAPACITY: usize = 1024;

/// How long exiting waits for queued lines to be written: a stalled stderr must not keep a
/// stopping agent alive.
const FLUSH_DEADLINE: Duration = Duration::from_secs(1);

/// The `MakeWriter` for `tracing_subscriber::fmt`: each event's formatted line is queued.
#[derive(Clone)]
pub struct QueuedStderr {
    shared: Arc<Shared>,
}

/// Writes what is still queued when dropped (at exit), for at most [`FLUSH_DEADLINE`].
#[must_use = "dropping the guard stops the log writer"]
pub struct FlushOnDrop {
    shared: Arc<Shared>,
}

struct Shared {
    capacity: usize,
    queue: Mutex<Queue>,
    /// Lines were queued, or the agent is exiting.
    queued: Condvar,
    /// The writer thread has finished (wrote everything after `closing`).
    finished: Condvar,
}

#[derive(Default)]
struct Queue {
    lines: VecDeque<Vec<u8>>,
    dropped: u64,
    closing: bool,
    finished: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic elsewhere while holding the lock leaves the queue consistent (every
        // change to it is a single push or take).
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the writer thread on `output` (stderr in the agent).
pub fn spawn(
    output: impl Write + Send + 'static,
    capacity: usize,
) -> std::io::Result<(QueuedStderr, FlushOnDrop)> {
    let shared = Arc::new(Shared {
        capacity,
        queue: Mutex::new(Queue::default()),
        queued: Condvar::new(),
        finished: Condvar::new(),
    });
    let writer_shared = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_queued_lines(&writer_shared, output))?;
    Ok((
        QueuedStderr {
            shared: Arc::clone(&shared),
        },
        FlushOnDrop { shared },
    ))
}

fn write_queued_lines(shared: &Shared, output: impl Write) {
    let mut output = BufWriter::new(output);
    loop {
        let (lines, dropped) = {
            let mut queue = shared.lock();
            while queue.lines.is_empty() && !queue.closing {
                queue = shared
                    .queued
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if queue.lines.is_empty() {
                queue.finished = true;
                shared.finished.notify_all();
                return;
            }
            (
                std::mem::take(&mut queue.lines),
                std::mem::take(&mut queue.dropped),
            )
        };
        // Lines are dropped only while the queue is full, so every line counted in `dropped`
        // came after all of `lines`: the notice goes right after them. Write errors are
        // ignored: there is nowhere else to report them.
        for line in lines {
            let _ = output.write_all(&line);
        }
        if dropped > 0 {
            let _ = writeln!(
                output,
                "WARN monitord: {dropped} log line{} dropped: stderr did not keep up",
                if dropped == 1 { "" } else { "s" }
            );
        }
        let _ = output.flush();
    }
}

impl QueuedStderr {
    fn push(&self, line: &[u8]) {
        let mut queue = self.shared.lock();
        if queue.lines.len() >= self.shared.capacity {
            queue.dropped += 1;
            return;
        }
        queue.lines.push_back(line.to_vec());
        drop(queue);
        self.shared.queued.notify_one();
    }
}

/// One event's line: `tracing_subscriber::fmt` formats an event into one buffer and writes
/// it with a single `write_all`, so each `write` is one whole line.
impl Write for QueuedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QueuedStderr {
    type Writer = QueuedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        let deadline = Instant::now() + FLUSH_DEADLINE;
        let mut queue = self.shared.lock();
        queue.closing = true;
        self.shared.queued.notify_one();
        while !queue.finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            queue = self
                .shared
                .finished
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output that blocks every write until the test lets it through, and tells the
    /// test when a write is waiting.
    struct GatedOutput {
        waiting: mpsc::Sender<()>,
        open: mpsc::Receiver<()>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for GatedOutput {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.waiting.send(());
            let _ = self.open.recv();
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_drops_and_counts_lines_and_says_so_after_the_queued_ones() {
        let (waiting_sender, waiting) = mpsc::channel();
        let (open, open_receiver) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let output = GatedOutput {
            waiting: waiting_sender,
            open: open_receiver,
            written: Arc::clone(&written),
        };
        let (mut queue, flush) = spawn(output, 2).unwrap();

        queue.write_all(b"one\n").unwrap();
        // The writer took "one" and is stuck writing it (BufWriter passes it on at flush).
        waiting.recv().unwrap();
        // Two fit in the queue; the other three are dropped without blocking.
        for line in ["two\n", "three\n", "four\n", "five\n", "six\n"] {
            queue.write_all(line.as_bytes()).unwrap();
        }
        // Let every write through: the stuck one, then the batch after it.
        for _ in 0..2 {
            open.send(()).unwrap();
        }
        drop(open);
        drop(flush);
        assert_eq!(
            String::from_utf8(written.lock().unwrap().clone()).unwrap(),
            "one\ntwo\nthree\nWARN monitord: 3 log lines dropped: stderr did not keep up\n"
        );
    }
}
