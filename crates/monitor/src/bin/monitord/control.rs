//! The control socket: one JSON request line in, one JSON response line out.
//!
//! Connections are served by small tasks that hand each request to the agent's loop over a
//! bounded channel (when full, a client waits: requests are rare and cheap) and wait for the
//! answer with a deadline.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use monitor_wire::control::{Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub type ControlRequest = (Request, oneshot::Sender<Response>);

const CLIENT_DEADLINE: Duration = Duration::from_secs(10);
/// A request line longer than this is not one of ours.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// Bind the socket, refusing to steal it from a running agent.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!(
            "another monitord is running with control socket {}; stop it first, or give this one another --runtime-dir",
            path.display()
        );
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::debug!(path = %path.display(), "removed a stale control socket"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))
        }
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    // Only root (and the agent's group) may steer the agent.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok(listener)
}

pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    requests: mpsc::Sender<ControlRequest>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, requests.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "control socket accept failed");
                    // Out of descriptors, most likely: give the system a moment.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer(stream: UnixStream, requests: mpsc::Sender<ControlRequest>) {
    let result = tokio::time::timeout(CLIENT_DEADLINE, async {
        let (reader, mut writer) = stream.into_split();
        let mut line = String::new();
        BufReader::new(reader.take(MAX_REQUEST_BYTES))
            .read_line(&mut line)
            .await?;
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                let (reply, answer) = oneshot::channel();
                if requests.send((request, reply)).await.is_err() {
                    Response::Error {
                        message: "the agent is shutting down".into(),
                    }
                } else {
                    answer.await.unwrap_or(Response::Error {
                        message: "the agent is shutting down".into(),
                    })
                }
            }
            Err(error) => Response::Error {
                message: format!(
                    "unreadable request: {error}; use a monitorctl of the same version"
                ),
            },
        };
        let mut bytes = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        writer.write_all(&bytes).await
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "control client went away"),
        Err(_) => tracing::debug!("control client timed out"),
    }
}
