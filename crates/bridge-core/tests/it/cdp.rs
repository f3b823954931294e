//! A minimal Chrome DevTools Protocol client for the dashboard's browser test: starts Debian's `chromium`
//! headless on a throwaway profile, attaches to one page over the DevTools WebSocket (tokio-tungstenite,
//! already in the tree, instead of a CDP crate and its build cost), and offers navigate / evaluate /
//! screenshot plus the log of every URL the page requested.
//!
//! Without `chromium` on PATH, [`Browser::launch`] returns `None` (the test prints how to enable it), unless
//! `CODEX_BRIDGE_REQUIRE_BROWSER=1` (set by .ci/run) makes that a failure. Every wait is bounded.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Pending = Arc<Mutex<std::collections::HashMap<u64, oneshot::Sender<Value>>>>;

pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next: Mutex<u64>,
    session: String,
    /// Every URL the page asked for (`Network.requestWillBeSent`).
    pub requests: Arc<Mutex<Vec<String>>>,
}

const STEP: Duration = Duration::from_secs(20);

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl Browser {
    /// Starts chromium and attaches to a new 1400×1000 page; `None` when chromium is missing (see the module doc).
    pub async fn launch() -> Option<Self> {
        let Some(bin) = chromium() else {
            if std::env::var("CODEX_BRIDGE_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("chromium not found on PATH but CODEX_BRIDGE_REQUIRE_BROWSER=1 (apt-get install chromium)");
            }
            eprintln!(
                "skipping the dashboard browser test: chromium not found (apt-get install chromium; \
                 CODEX_BRIDGE_REQUIRE_BROWSER=1 makes it required)"
            );
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let ws_url = rx.recv_timeout(STEP).expect("chromium printed its DevTools address");
        let (socket, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await.unwrap();
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (p, r) = (pending.clone(), requests.clone());
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    if let Some(tx) = p.lock().unwrap().remove(&id) {
                        let _ = tx.send(v);
                    }
                } else if v["method"] == "Network.requestWillBeSent" {
                    r.lock().unwrap().push(v["params"]["request"]["url"].as_str().unwrap_or_default().to_owned());
                }
            }
        });
        let mut browser =
            Self { child, _profile: profile, out, pending, next: Mutex::new(0), session: String::new(), requests };
        let target = browser.call_browser("Target.createTarget", json!({"url": "about:blank"})).await;
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached =
            browser.call_browser("Target.attachToTarget", json!({"targetId": target_id, "flatten": true})).await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.call("Network.enable", json!({})).await;
        browser.call("Page.enable", json!({})).await;
        // Content-Security-Policy violations (inline styles, foreign fetches) are collected for `open`.
        let record = "window.__csp = []; document.addEventListener('securitypolicyviolation', \
                      e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));";
        browser.call("Page.addScriptToEvaluateOnNewDocument", json!({"source": record})).await;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        Some(browser)
    }

    async fn send(&self, method: &str, params: Value, session: Option<&str>) -> Value {
        let id = {
            let mut n = self.next.lock().unwrap();
            *n += 1;
            *n
        };
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.out.send(Message::Text(msg.to_string().into())).unwrap();
        let reply = tokio::time::timeout(STEP, rx).await.unwrap_or_else(|_| panic!("{method} timed out")).unwrap();
        assert!(reply.get("error").is_none(), "{method}: {reply}");
        reply["result"].clone()
    }

    async fn call_browser(&self, method: &str, params: Value) -> Value {
        self.send(method, params, None).await
    }

    /// A CDP command on the page.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session)).await
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value.
    pub async fn eval(&self, expression: &str) -> Value {
        let r = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}))
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy (at most 20 s) and returns its value.
    pub async fn wait_for(&self, expression: &str) -> Value {
        let deadline = Instant::now() + STEP;
        loop {
            let v = self.eval(expression).await;
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {expression}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Loads `url`, waits until the dashboard rendered the page its hash names, and checks that the page broke
    /// no rule of its Content-Security-Policy.
    pub async fn open(&self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        let hash = url.split_once('#').map_or("overview", |(_, h)| h).trim_start_matches('/').to_owned();
        let hash = if hash.is_empty() { "overview".to_owned() } else { hash };
        self.wait_for(&format!("document.body && document.body.dataset.ready === {}", json!(hash))).await;
        let violations = self.eval("window.__csp").await;
        assert_eq!(violations, json!([]), "{url}: CSP violations");
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": false})).await;
        base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
