//! A round-robin TCP load balancer for tests, as HAProxy's `mode tcp` with `balance
//! roundrobin` would be: each new connection goes to the next backend, and bytes are copied
//! both ways until either side closes. It knows nothing of HTTP, so what reaches a replica
//! is what a client sent. It counts the connections each backend got, so a test can show
//! which replica served it.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Balancer {
    address: SocketAddr,
    connections: Arc<Vec<AtomicUsize>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Balancer {
    /// Listens on `127.0.0.1:0` in front of `backends` (`http://host:port` URLs).
    pub fn start(backends: &[&str]) -> Balancer {
        let backends: Vec<SocketAddr> = backends
            .iter()
            .map(|url| {
                let address = url.strip_prefix("http://").unwrap_or(url);
                address
                    .parse()
                    .unwrap_or_else(|error| panic!("{url}: {error}"))
            })
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the balancer");
        let address = listener.local_addr().unwrap();
        let connections: Arc<Vec<AtomicUsize>> =
            Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (connections, stop) = (connections.clone(), stop.clone());
            move || {
                for (turn, client) in listener.incoming().enumerate() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let index = turn % backends.len();
                    connections[index].fetch_add(1, Ordering::SeqCst);
                    // A backend that refuses closes the client's connection, as HAProxy
                    // does without retries: the test sees it.
                    if let Ok(backend) = TcpStream::connect(backends[index]) {
                        let _ = relay(client, backend);
                    }
                }
            }
        });
        Balancer {
            address,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// How many connections each backend got so far, in the order given.
    pub fn connections(&self) -> Vec<usize> {
        self.connections
            .iter()
            .map(|count| count.load(Ordering::SeqCst))
            .collect()
    }
}

/// Copies each way on its own thread; the end of one direction is passed on as a
/// half-close, so a client's request body and the server's answer each end where they
/// should.
fn relay(client: TcpStream, backend: TcpStream) -> io::Result<()> {
    let (client_reader, backend_writer) = (client.try_clone()?, backend.try_clone()?);
    std::thread::spawn(move || copy(client_reader, backend_writer));
    std::thread::spawn(move || copy(backend, client));
    Ok(())
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees `stop`.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
