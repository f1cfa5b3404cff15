//! Just enough HTTP/1.1 over a unix socket for the Docker Engine API: `GET` requests with
//! `Connection: close`, bodies framed by `Content-Length`, `Transfer-Encoding: chunked` or the
//! end of the connection, and the endless chunked `/events` stream read as it arrives.
//!
//! Reading the body is cancel-safe ([`Body::read_some`] only awaits one `read`, and keeps all
//! decoding state in the [`Body`]), so the watcher can `select!` on the event stream.

use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::DockerError;

/// Longest response head accepted; the engine's are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Largest non-streamed body accepted; an inspect answer is a few KiB.
const MAX_BODY: usize = 8 * 1024 * 1024;
const READ_SIZE: usize = 16 * 1024;

/// A complete answer to a request.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET path` on the engine at `socket`, all of it (connect, send, read) within `timeout`.
pub(crate) async fn get(
    socket: &Path,
    path: &str,
    timeout: Duration,
) -> Result<Response, DockerError> {
    let call = format!("GET {path}");
    let exchange = async {
        let (status, mut body) = open(socket, path, &call).await?;
        let mut content = Vec::new();
        while body.read_some(&mut content).await? {
            if content.len() > MAX_BODY {
                return Err(DockerError::Protocol {
                    call: call.clone(),
                    reason: format!("the answer is larger than {MAX_BODY} bytes"),
                });
            }
        }
        Ok(Response {
            status,
            body: content,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(DockerError::Timeout {
            socket: socket.to_owned(),
            call,
            timeout,
        }),
    }
}

/// Sends `GET path` and reads the response head; the body follows through the [`Body`].
pub(crate) async fn open(
    socket: &Path,
    path: &str,
    call: &str,
) -> Result<(u16, Body), DockerError> {
    let io_error = |source: std::io::Error| DockerError::Io {
        socket: socket.to_owned(),
        call: call.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|source| DockerError::Connect {
            socket: socket.to_owned(),
            source,
        })?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: monitor-docker\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(io_error)?;
    let mut raw = BytesMut::with_capacity(READ_SIZE);
    let head_end = loop {
        if let Some(position) = find(&raw, b"\r\n\r\n") {
            break position;
        }
        if raw.len() > MAX_HEAD {
            return Err(protocol(call, "the response head is too long"));
        }
        if stream.read_buf(&mut raw).await.map_err(io_error)? == 0 {
            return Err(DockerError::Io {
                socket: socket.to_owned(),
                call: call.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the engine closed the connection before answering",
                ),
            });
        }
    };
    let head = raw.split_to(head_end + 4);
    let head = std::str::from_utf8(&head).map_err(|_| protocol(call, "the head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status_line(status_line)
        .ok_or_else(|| protocol(call, &format!("bad status line {status_line:?}")))?;
    let mut framing = Framing::UntilClose;
    for line in lines.filter(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(protocol(call, &format!("bad header line {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked(ChunkState::Size);
        } else if name.eq_ignore_ascii_case("content-length")
            && !matches!(framing, Framing::Chunked(_))
        {
            let length = value
                .parse()
                .map_err(|_| protocol(call, &format!("bad Content-Length {value:?}")))?;
            framing = Framing::Length(length);
        }
    }
    // Answers without a body.
    if status == 204 || status == 304 || (100..200).contains(&status) {
        framing = Framing::Length(0);
    }
    Ok((
        status,
        Body {
            stream,
            raw,
            framing,
            socket: socket.to_owned(),
            call: call.to_owned(),
        },
    ))
}

fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

fn protocol(call: &str, reason: &str) -> DockerError {
    DockerError::Protocol {
        call: call.to_owned(),
        reason: reason.to_owned(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// How the end of a body is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(usize),
    Chunked(ChunkState),
    /// The engine closes the connection after the body.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk with this many bytes left.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk, expecting trailer lines up to an empty one.
    Trailer,
    Done,
}

/// The body of a response, read as it arrives.
pub(crate) struct Body {
    stream: UnixStream,
    /// Bytes received and not yet decoded.
    raw: BytesMut,
    framing: Framing,
    socket: std::path::PathBuf,
    call: String,
}

impl Body {
    /// Appends the next decoded bytes to `out`. Returns `false` once the body is complete
    /// (the last bytes may have been appended by the same call).
    /// Cancel-safe: nothing received is lost if the future is dropped.
    pub(crate) async fn read_some(&mut self, out: &mut Vec<u8>) -> Result<bool, DockerError> {
        loop {
            let before = out.len();
            self.decode(out)?;
            if self.complete() {
                return Ok(false);
            }
            if out.len() > before {
                return Ok(true);
            }
            let received = self
                .stream
                .read_buf(&mut self.raw)
                .await
                .map_err(|source| DockerError::Io {
                    socket: self.socket.clone(),
                    call: self.call.clone(),
                    source,
                })?;
            if received == 0 {
                if self.framing == Framing::UntilClose {
                    self.framing = Framing::Length(0);
                    continue;
                }
                return Err(DockerError::Io {
                    socket: self.socket.clone(),
                    call: self.call.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the engine closed the connection in the middle of the answer",
                    ),
                });
            }
        }
    }

    fn complete(&self) -> bool {
        matches!(
            self.framing,
            Framing::Length(0) | Framing::Chunked(ChunkState::Done)
        )
    }

    /// Moves what can be decoded from `raw` to `out`.
    fn decode(&mut self, out: &mut Vec<u8>) -> Result<(), DockerError> {
        loop {
            match self.framing {
                Framing::UntilClose => {
                    out.extend_from_slice(&self.raw);
                    self.raw.clear();
                    return Ok(());
                }
                Framing::Length(left) => {
                    let take = left.min(self.raw.len());
                    out.extend_from_slice(&self.raw[..take]);
                    self.raw.advance(take);
                    self.framing = Framing::Length(left - take);
                    return Ok(());
                }
                Framing::Chunked(state) => {
                    let next = match state {
                        ChunkState::Done => return Ok(()),
                        ChunkState::Size => {
                            let Some(end) = find(&self.raw, b"\r\n") else {
                                return self.limit_line();
                            };
                            let line = self.raw.split_to(end + 2);
                            let line = std::str::from_utf8(&line[..end]).unwrap_or("?");
                            let size = line.split(';').next().unwrap_or_default().trim();
                            let size = usize::from_str_radix(size, 16).map_err(|_| {
                                protocol(&self.call, &format!("bad chunk size {line:?}"))
                            })?;
                            if size == 0 {
                                ChunkState::Trailer
                            } else {
                                ChunkState::Data(size)
                            }
                        }
                        ChunkState::Data(left) => {
                            if self.raw.is_empty() {
                                return Ok(());
                            }
                            let take = left.min(self.raw.len());
                            out.extend_from_slice(&self.raw[..take]);
                            self.raw.advance(take);
                            if take == left {
                                ChunkState::DataEnd
                            } else {
                                ChunkState::Data(left - take)
                            }
                        }
                        ChunkState::DataEnd => {
                            if self.raw.len() < 2 {
                                return Ok(());
                            }
                            if &self.raw[..2] != b"\r\n" {
                                return Err(protocol(&self.call, "a chunk does not end in CRLF"));
                            }
                            self.raw.advance(2);
                            ChunkState::Size
                        }
                        ChunkState::Trailer => {
                            let Some(end) = find(&self.raw, b"\r\n") else {
                                return self.limit_line();
                            };
                            self.raw.advance(end + 2);
                            if end == 0 {
                                ChunkState::Done
                            } else {
                                ChunkState::Trailer
                            }
                        }
                    };
                    self.framing = Framing::Chunked(next);
                }
            }
        }
    }

    fn limit_line(&self) -> Result<(), DockerError> {
        if self.raw.len() > MAX_HEAD {
            Err(protocol(&self.call, "a chunk header is too long"))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `answer` once on a fresh socket and returns what `get` made of it.
    async fn answer_with(answer: &'static [u8]) -> Result<Response, DockerError> {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 4096];
            let _ = stream.read(&mut request).await.unwrap();
            // Dribble the answer out in small pieces to exercise the decoder's state.
            for piece in answer.chunks(3) {
                stream.write_all(piece).await.unwrap();
                stream.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let response = get(&socket, "/containers/x/json", Duration::from_secs(5)).await;
        server.await.unwrap();
        response
    }

    #[tokio::test]
    async fn reads_a_content_length_body() {
        let response =
            answer_with(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhello").await;
        let response = response.unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.body, b"hello");
    }

    #[tokio::test]
    async fn reads_a_chunked_body_with_extensions_and_trailers() {
        let response = answer_with(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nB\r\n, container\r\n0\r\nX-Trailer: 1\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello, container");
    }

    #[tokio::test]
    async fn reads_a_body_up_to_the_end_of_the_connection() {
        let response = answer_with(b"HTTP/1.0 200 OK\r\n\r\n{}").await.unwrap();
        assert_eq!(response.body, b"{}");
    }

    #[tokio::test]
    async fn a_truncated_chunked_body_is_an_error() {
        let error = answer_with(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
            .await
            .unwrap_err();
        assert!(matches!(error, DockerError::Io { .. }), "{error}");
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let error = answer_with(b"SSH-2.0-OpenSSH\r\n\r\n").await.unwrap_err();
        assert!(matches!(error, DockerError::Protocol { .. }), "{error}");
    }
}
