//! Real TCP and HTTP servers on 127.0.0.1 going up and down, and names that do and do not
//! resolve.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A listener on `address` (port 0: any free one); the address may be one a stopped server
/// had, for a server that comes back.
fn listen(address: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(address).unwrap();
    socket.listen(16).unwrap()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A real HTTP/1.1 server answering every request with `status`, and remembering the
/// request lines it saw. `answer: false` makes it read requests and never answer.
struct HttpServer {
    address: SocketAddr,
    status: Arc<AtomicU16>,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl HttpServer {
    fn start(address: SocketAddr, answer: bool) -> Self {
        let listener = listen(address);
        let address = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let status = status.clone();
            let requests = requests.clone();
            async move {
                let mut connections = Vec::new();
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let status = status.clone();
                    let requests = requests.clone();
                    connections.push(tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buffer = [0; 1024];
                        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                            match stream.read(&mut buffer).await {
                                Ok(count) if count > 0 => head.extend_from_slice(&buffer[..count]),
                                _ => return,
                            }
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        requests
                            .lock()
                            .unwrap()
                            .push(head.lines().next().unwrap_or("").to_owned());
                        if !answer {
                            return std::future::pending().await;
                        }
                        let status = status.load(Ordering::SeqCst);
                        let response = format!(
                            "HTTP/1.1 {status} Whatever\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                    }));
                }
            }
        });
        HttpServer {
            address,
            status,
            requests,
            task,
        }
    }

    /// Stops listening: the port refuses connections until a server starts on it again.
    async fn stop(self) -> SocketAddr {
        self.task.abort();
        let _ = self.task.await;
        self.address
    }

    fn url(&self, path: &str) -> reqwest::Url {
        format!("http://{}{path}", self.address).parse().unwrap()
    }
}

fn http_probe(url: reqwest::Url, method: HttpMethod) -> ConnectivityProbe {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ConnectivityProbe::new(
        ConnectivityTarget::Http {
            url,
            method,
            expected_status: 200..=399,
        },
        TIMEOUT,
    )
}

fn verdict(reading: &Reading) -> (bool, &str) {
    match reading {
        Reading::Verdict { bad, text } => (*bad, text),
        other => panic!("expected a verdict, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tcp_port_going_down_and_up() {
    let listener = listen(any_port());
    let address = listener.local_addr().unwrap();
    let probe = ConnectivityProbe::new(
        ConnectivityTarget::Tcp {
            host: "127.0.0.1".to_owned(),
            port: address.port(),
        },
        TIMEOUT,
    );
    let reading = probe.sample(&Roots::default()).await;
    let (bad, text) = verdict(&reading);
    assert!(!bad);
    assert!(
        text.starts_with(&format!("{address} accepts connections (")),
        "{text}"
    );

    drop(listener);
    let reading = probe.sample(&Roots::default()).await;
    assert_eq!(
        reading,
        Reading::Verdict {
            bad: true,
            text: format!("cannot connect to {address}: Connection refused (os error 111)")
        }
    );

    let _listener = listen(address);
    let (bad, _) = verdict(&probe.sample(&Roots::default()).await);
    assert!(!bad, "the port is back");
}

#[tokio::test]
async fn an_http_server_answering_stopping_and_coming_back() {
    let server = HttpServer::start(any_port(), true);
    let probe = http_probe(server.url("/health"), HttpMethod::Head);

    let reading = probe.sample(&Roots::default()).await;
    let (bad, text) = verdict(&reading);
    assert!(!bad, "{text}");
    let shown = format!("HEAD http://{}/health", server.address);
    assert!(text.starts_with(&format!("{shown}: 200 OK (")), "{text}");
    assert_eq!(
        server.requests.lock().unwrap().as_slice(),
        ["HEAD /health HTTP/1.1"]
    );

    // A redirect is an answer; an error status is not.
    server.status.store(301, Ordering::SeqCst);
    assert!(!verdict(&probe.sample(&Roots::default()).await).0);
    server.status.store(503, Ordering::SeqCst);
    let reading = probe.sample(&Roots::default()).await;
    assert_eq!(
        reading,
        Reading::Verdict {
            bad: true,
            text: format!("{shown}: 503 Service Unavailable (expected 200-399)")
        }
    );

    let address = server.stop().await;
    let reading = probe.sample(&Roots::default()).await;
    assert_eq!(
        reading,
        Reading::Verdict {
            bad: true,
            text: format!("{shown}: cannot connect: Connection refused (os error 111)")
        }
    );

    let server = HttpServer::start(address, true);
    let reading = probe.sample(&Roots::default()).await;
    let (bad, text) = verdict(&reading);
    assert!(!bad, "the server is back: {text}");
    server.stop().await;
}

#[tokio::test]
async fn a_get_check_with_its_own_status_range() {
    let server = HttpServer::start(any_port(), true);
    let probe = ConnectivityProbe {
        target: ConnectivityTarget::Http {
            url: server.url("/"),
            method: HttpMethod::Get,
            expected_status: 200..=299,
        },
        ..http_probe(server.url("/"), HttpMethod::Get)
    };
    assert!(!verdict(&probe.sample(&Roots::default()).await).0);
    server.status.store(302, Ordering::SeqCst);
    let reading = probe.sample(&Roots::default()).await;
    let (bad, text) = verdict(&reading);
    assert!(bad);
    assert!(text.ends_with("302 Found (expected 200-299)"), "{text}");
    assert_eq!(
        server.requests.lock().unwrap().as_slice(),
        ["GET / HTTP/1.1", "GET / HTTP/1.1"]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = HttpServer::start(any_port(), false);
    let probe = ConnectivityProbe {
        timeout: Duration::from_millis(300),
        ..http_probe(server.url("/"), HttpMethod::Head)
    };
    let reading = probe.sample(&Roots::default()).await;
    assert_eq!(
        reading,
        Reading::Verdict {
            bad: true,
            text: format!("HEAD http://{}/: no answer within 300ms", server.address)
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn credentials_in_the_url_are_never_shown() {
    let server = HttpServer::start(any_port(), true);
    let url: reqwest::Url = format!("http://admin:s3cret@{}/", server.address)
        .parse()
        .unwrap();
    let probe = http_probe(url, HttpMethod::Head);
    assert_eq!(
        probe.target.to_string(),
        format!("http://{}/", server.address)
    );
    server.status.store(500, Ordering::SeqCst);
    let reading = probe.sample(&Roots::default()).await;
    let (bad, text) = verdict(&reading);
    assert!(bad);
    assert!(
        !text.contains("s3cret") && !text.contains("admin"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_name_that_resolves_and_one_that_cannot() {
    let probe = ConnectivityProbe::new(
        ConnectivityTarget::Dns {
            name: "localhost".to_owned(),
        },
        TIMEOUT,
    );
    let reading = probe.sample(&Roots::default()).await;
    let (bad, text) = verdict(&reading);
    assert!(!bad, "{text}");
    assert!(text.starts_with("localhost resolves to "), "{text}");
    assert!(text.contains("127.0.0.1") || text.contains("::1"), "{text}");

    // `.invalid` never resolves (RFC 2606); with no DNS server reachable the lookup may
    // time out instead: bad either way.
    let name = format!("monitor-{}.invalid", std::process::id());
    let probe = ConnectivityProbe::new(ConnectivityTarget::Dns { name: name.clone() }, TIMEOUT);
    let reading = probe.sample(&Roots::default()).await;
    let (bad, text) = verdict(&reading);
    assert!(bad, "{text}");
    assert!(
        text.starts_with(&format!("cannot resolve {name}: "))
            || text == format!("{name} was not resolved within 5s"),
        "{text}"
    );

    // A TCP check to an unresolvable host fails the same way.
    let probe = ConnectivityProbe::new(
        ConnectivityTarget::Tcp {
            host: name.clone(),
            port: 80,
        },
        TIMEOUT,
    );
    let reading = probe.sample(&Roots::default()).await;
    let (bad, text) = verdict(&reading);
    assert!(bad, "{text}");
}
