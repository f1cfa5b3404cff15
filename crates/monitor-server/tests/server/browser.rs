//! A real browser for the dashboard tests: Debian's `chromium`, headless, driven over the
//! W3C WebDriver protocol by Debian's `chromedriver` (a few JSON requests; no client crate).
//!
//! [`Browser::start`] returns `None` (and says why) when chromium or chromedriver is
//! missing, unless `CI=true`, where that is a failure. Dropping it ends the session and
//! stops chromedriver (which stops chromium).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Browser {
    driver: Child,
    client: reqwest::Client,
    session_url: String,
    _profile: tempfile::TempDir,
    screenshots: PathBuf,
}

impl Browser {
    pub async fn start(screenshots: &Path) -> Option<Browser> {
        for program in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(program).exists() {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("CI=true but {program} is missing: apt-get install chromium chromium-driver");
                }
                eprintln!(
                    "skipping: {program} is missing (apt-get install chromium chromium-driver)"
                );
                return None;
            }
        }
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // chromedriver says on stdout when it listens; wait for that line.
        let stdout = driver.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + DEADLINE;
        loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("chromedriver did not say it started");
            if line.contains("started successfully") {
                break;
            }
        }
        let client = crate::api::client();
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1200,900",
                ]
            }
        }}});
        let session: Value = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"));
        std::fs::create_dir_all(screenshots).unwrap();
        // Finding an element waits (in the browser) until it appears, up to the deadline.
        client
            .post(format!("{base}/session/{id}/timeouts"))
            .json(&json!({"implicit": DEADLINE.as_millis() as u64}))
            .send()
            .await
            .unwrap();
        Some(Browser {
            driver,
            client,
            session_url: format!("{base}/session/{id}"),
            _profile: profile,
            screenshots: screenshots.to_owned(),
        })
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.session_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    pub async fn go(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The first element matching a CSS selector, waiting until one appears; fails at the
    /// deadline.
    pub async fn wait_for(&self, selector: &str) -> String {
        let value = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await;
        match value[ELEMENT_KEY].as_str() {
            Some(element) => element.to_owned(),
            None => panic!(
                "no `{selector}` within {DEADLINE:?} on {}: {value}",
                self.url().await
            ),
        }
    }

    pub async fn text(&self, element: &str) -> String {
        self.command(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    pub async fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.command(
            reqwest::Method::GET,
            &format!("/element/{element}/attribute/{name}"),
            None,
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    pub async fn type_into(&self, selector: &str, text: &str) {
        let element = self.wait_for(selector).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn click(&self, selector: &str) {
        let element = self.wait_for(selector).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a PNG of the page as `<name>.png` among the screenshots; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session is what makes chromedriver quit chromium: killing chromedriver
        // alone leaves chromium running, its child no more. Drop cannot await, so this is
        // one plain HTTP request, bounded in time, even when the test panicked.
        end_session(&self.session_url);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE <session_url>` (`http://127.0.0.1:<port>/session/<id>`), waiting up to 10 s for
/// chromedriver's answer: it answers once chromium has quit.
fn end_session(session_url: &str) {
    use std::io::{Read, Write};
    let Some((address, path)) = session_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
    else {
        return;
    };
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /{path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}
