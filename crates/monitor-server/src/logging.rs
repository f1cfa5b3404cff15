//! The server's log lines, escaped: a control character that a device or a user sent (a
//! newline in a MAC, a carriage return, a terminal escape) is written as `\n`, `\r`,
//! `\x1b`, so it can neither start a forged line nor rewrite the terminal.

use std::io::Write;

/// Standard error for `tracing_subscriber::fmt`, escaping each event as it is written.
///
/// The formatter writes one event at a time with one `write_all`, ending in its newline:
/// only that last newline is kept as is. With `ansi` (a terminal), the formatter's own
/// colour codes are kept too; without it, every escape character is escaped.
#[derive(Debug, Clone, Copy)]
pub struct EscapedStderr {
    pub ansi: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for EscapedStderr {
    type Writer = EscapedWriter<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapedWriter {
            inner: std::io::stderr(),
            ansi: self.ansi,
        }
    }
}

/// Writes each buffer escaped (see [`EscapedStderr`]).
pub struct EscapedWriter<W> {
    inner: W,
    ansi: bool,
}

impl<W> EscapedWriter<W> {
    pub fn new(inner: W, ansi: bool) -> Self {
        EscapedWriter { inner, ansi }
    }
}

impl<W: Write> Write for EscapedWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.inner.write_all(&escape_line(buffer, self.ansi))?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `line` with every control character but a final newline (and, with `ansi`, escape
/// characters) written as an escape sequence.
pub fn escape_line(line: &[u8], ansi: bool) -> Vec<u8> {
    let (body, ending) = match line.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (line, &b""[..]),
    };
    let mut escaped = Vec::with_capacity(line.len());
    let mut bytes = body.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        match byte {
            b'\n' => escaped.extend_from_slice(b"\\n"),
            b'\r' => escaped.extend_from_slice(b"\\r"),
            b'\t' => escaped.push(b'\t'),
            0x1b if ansi => escaped.push(byte),
            0x00..=0x1f | 0x7f => escaped.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
            // C1 controls (U+0080 to U+009F, UTF-8 `C2 80` to `C2 9F`) act as escapes in
            // some terminals.
            0xc2 if bytes
                .peek()
                .is_some_and(|next| (0x80..=0x9f).contains(next)) =>
            {
                let control = bytes.next().unwrap_or_default();
                escaped.extend_from_slice(format!("\\u{{{control:x}}}").as_bytes());
            }
            _ => escaped.push(byte),
        }
    }
    escaped.extend_from_slice(ending);
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line() {
        let line = b"INFO a new device asked to join device=aa\n2024 INFO forged\r\x1b[2K x\n";
        assert_eq!(
            escape_line(line, false),
            b"INFO a new device asked to join device=aa\\n2024 INFO forged\\r\\x1b[2K x\n"
        );
        assert_eq!(
            escape_line(b"\x1b[32mINFO\x1b[0m ok\n", true),
            b"\x1b[32mINFO\x1b[0m ok\n"
        );
    }
}
