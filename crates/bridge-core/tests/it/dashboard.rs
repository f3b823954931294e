//! The dashboard (issue 18): its JSON API and access rules over plain HTTP, and the page itself in headless
//! chromium (see `cdp.rs`) after a replay through the bridge to the emulator: a root session with a forced
//! miss, a fork of it, and a session in a shared namespace. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/dashboard/`; with `CODEX_BRIDGE_UPDATE_SCREENSHOTS=1` they also replace the ones in
//! docs/dashboard/.

use std::time::Duration;

use codex_emulator::RunningEmulator;
use codex_emulator::config::EmulatorConfig;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::cdp::Browser;
use crate::support::{Options, TestBridge, client};

const T0: u64 = 1_800_000_000_000;
const BUDGET_5H: u64 = 200_000;
const BUDGET_WEEK: u64 = 2_000_000;

async fn emulator() -> RunningEmulator {
    codex_emulator::spawn(EmulatorConfig {
        virtual_clock_ms: Some(T0),
        budget_5h_tokens: Some(BUDGET_5H),
        budget_weekly_tokens: Some(BUDGET_WEEK),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

fn text(label: &str, tokens: usize) -> String {
    (0..tokens / 12).map(|i| format!("{label} line {i}: the quick brown fox jumps over it.\n")).collect()
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

fn reply() -> Value {
    json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "pong"}]})
}

/// Posts one non-streaming turn at virtual time `T0 + t_ms`; returns the usage the client got.
async fn post(bridge: &TestBridge, body: &Value, headers: &[(&str, &str)], t_ms: u64) -> Value {
    let mut req = client()
        .post(bridge.url("/v1/responses"))
        .json(body)
        .header("authorization", "Bearer test")
        .header("x-emulator-time", (T0 + t_ms).to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let v: Value = resp.json().await.unwrap();
    bridge.settle().await;
    v["usage"].clone()
}

/// The replay: `root-R` (4 turns, the 4th edits the first user message: a forced miss), `fork-F` (a fork of
/// root-R by `parent_conversation_id`), `ns-A` (in the shared namespace `team`). Returns the input tokens the
/// client was told, in order.
async fn replay(bridge: &TestBridge) -> Vec<u64> {
    let startup = json!({"role": "developer", "content": text("startup", 2000)});
    let mut inputs = Vec::new();
    let mut history = vec![startup.clone()];
    for turn in 0..3u64 {
        history.push(user(&text(&format!("question {turn}"), 200)));
        let body = json!({"model": "gpt-5", "input": history, "metadata": {"conversation_id": "root-R"}});
        inputs.push(post(bridge, &body, &[], turn * 10_000).await["input_tokens"].as_u64().unwrap());
        history.push(reply());
    }
    let mut edited = history.clone();
    edited[1] = user(&text("an edited first question", 200));
    edited.push(user("and now?"));
    let body = json!({"model": "gpt-5", "input": edited, "metadata": {"conversation_id": "root-R"}});
    inputs.push(post(bridge, &body, &[], 40_000).await["input_tokens"].as_u64().unwrap());
    let mut fork = history[..4].to_vec();
    fork.push(user("a different follow-up"));
    let body = json!({"model": "gpt-5", "input": fork,
        "metadata": {"conversation_id": "fork-F", "parent_conversation_id": "root-R"}});
    inputs.push(post(bridge, &body, &[], 50_000).await["input_tokens"].as_u64().unwrap());
    let body = json!({"model": "gpt-5", "input": [startup, user("namespaced question")],
        "metadata": {"conversation_id": "ns-A"}});
    let ns = [("x-codex-bridge-cache-namespace", "team")];
    inputs.push(post(bridge, &body, &ns, 60_000).await["input_tokens"].as_u64().unwrap());
    inputs
}

/// A project with a four-task graph in `data`'s journal (what `codex-bridge tasks` or a plan tool writes).
fn seed_project(data: &std::path::Path) {
    use bridge_journal::tasks::TaskStatus;
    let dir = bridge_journal::project::ProjectDir::new(data, std::path::Path::new("/work/example-app"));
    dir.update(|s| {
        let g = &mut s.tasks;
        let schema = g.add("Design the schema", &[], None).unwrap();
        let api = g.add("Write the API", std::slice::from_ref(&schema), None).unwrap();
        let ui = g.add("Build the page", std::slice::from_ref(&schema), None).unwrap();
        let ship = g.add("Ship it", &[api.clone(), ui.clone()], None).unwrap();
        g.set_status(&schema, TaskStatus::Completed, None).unwrap();
        g.set_status(&api, TaskStatus::InProgress, None).unwrap();
        g.set_status(&ui, TaskStatus::Blocked, Some("waits for review")).unwrap();
        let _ = ship;
    })
    .unwrap();
}

async fn get(bridge: &TestBridge, path: &str) -> Value {
    let resp = client().get(bridge.url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// The emulator's own account of the plan windows (`GET /backend-api/wham/usage`).
async fn emulator_quota(emu: &RunningEmulator) -> Value {
    let resp = client()
        .get(format!("{}/backend-api/wham/usage", emu.base_url()))
        .header("authorization", "Bearer test")
        .header("x-emulator-time", (T0 + 80_000).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn the_api_shows_lineages_misses_quota_and_live_turns() {
    let emu = emulator().await;
    let data = tempfile::tempdir().unwrap();
    seed_project(data.path());
    let options = Options { data_dir: Some(data.path().to_owned()), ..Options::default() };
    let bridge = TestBridge::with(&format!("{}/v1", emu.base_url()), options).await;
    let projects = get(&bridge, "/api/projects").await;
    assert_eq!(projects["projects"][0]["root"], "/work/example-app");
    let tasks = &projects["projects"][0]["tasks"];
    assert_eq!(tasks.as_array().unwrap().len(), 4);
    assert_eq!(tasks[3]["depends_on"].as_array().unwrap().len(), 2);
    assert_eq!(tasks[2]["status"], "blocked");
    let empty = get(&bridge, "/api/overview").await;
    assert_eq!(empty["requests"], 0);
    assert_eq!(empty["input_tokens"], Value::Null, "no usage yet is unknown, not 0");
    assert_eq!(empty["cached_share"], Value::Null);
    assert_eq!(get(&bridge, "/api/quota").await["primary"], Value::Null, "no quota report yet");

    let mut live = client().get(bridge.url("/api/live")).send().await.unwrap().bytes_stream();
    let inputs = replay(&bridge).await;

    let o = get(&bridge, "/api/overview").await;
    assert_eq!(o["requests"], 6);
    assert_eq!(o["input_tokens"].as_u64(), Some(inputs.iter().sum()), "the input the clients were told");
    let (input, cached) = (o["input_tokens"].as_f64().unwrap(), o["cached_tokens"].as_f64().unwrap());
    assert!(cached > 0.0);
    assert_eq!(o["cached_share"].as_f64().unwrap(), cached / input);
    assert_eq!(o["by_model"]["gpt-5"]["requests"], 6);
    assert_eq!(o["active_sessions"], 3);
    assert_eq!(o["transports"]["http-json"], 6);
    assert_eq!(o["errors"], json!([]));

    let list = get(&bridge, "/api/sessions").await;
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["session"].as_str().unwrap()).collect();
    assert_eq!(names, ["ns-A", "fork-F", "root-R"], "newest first");
    let found = get(&bridge, "/api/sessions?q=FORK").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["session"], "fork-F");

    let fork = get(&bridge, "/api/sessions/fork-F").await;
    let members = fork["lineage"]["members"].as_array().unwrap();
    let roles: Vec<(&str, &str)> =
        members.iter().map(|m| (m["role"].as_str().unwrap(), m["session"].as_str().unwrap())).collect();
    assert_eq!(roles, [("root", "root-R"), ("fork", "fork-F")]);
    assert_eq!(members[1]["fork"], 1);
    assert_eq!(fork["lineage"]["root_key"], "cache_root-R");

    let root = get(&bridge, "/api/sessions/root-R").await;
    let turns = root["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 4);
    let outcomes: Vec<&str> = turns.iter().map(|t| t["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["new-identity", "hit", "hit", "prefix-changed@1:input"]);
    assert_eq!(turns[3]["miss"], true);
    assert_eq!(turns[3]["prefix_break"], json!({"position": 1, "field": "input"}));
    assert_eq!(turns[1]["miss"], false);
    let share = turns[1]["cached_share"].as_f64().unwrap();
    assert_eq!(share, turns[1]["cached_tokens"].as_f64().unwrap() / turns[1]["input_tokens"].as_f64().unwrap());

    let ns = get(&bridge, "/api/sessions/ns-A").await;
    assert_eq!(ns["lineage"]["namespace"], "team");
    assert_eq!(ns["turns"][0]["key_kind"], "namespace");

    let quota = get(&bridge, "/api/quota").await;
    let truth = emulator_quota(&emu).await;
    assert_eq!(quota["mode"], "passthrough");
    assert_eq!(quota["primary"]["used_percent"], truth["rate_limit"]["primary_window"]["used_percent"]);
    assert_eq!(quota["secondary"]["used_percent"], truth["rate_limit"]["secondary_window"]["used_percent"]);
    assert!(quota["primary"]["used_percent"].as_f64().unwrap() > 0.0, "{quota}");
    assert_eq!(quota["primary"]["window_minutes"], 300);
    assert_eq!(quota["token_expires_at_ms"], Value::Null, "no ChatGPT login: unknown");

    // Every tracked turn reached the live stream, in order.
    let mut text = String::new();
    while text.matches("event: turn").count() < 6 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), live.next()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first = text.find("\"session\":\"root-R\"").unwrap();
    assert!(first < text.find("\"session\":\"ns-A\"").unwrap());
    drop(live);
    bridge.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn with_tokens_the_page_needs_a_login_cookie() {
    let upstream = crate::support::ScriptedUpstream::start().await;
    let token = "dash-token-1";
    let bridge =
        TestBridge::with(&upstream.url(), Options { access_tokens: Some(token.into()), ..Options::default() }).await;
    let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let origin = bridge.url("");

    let page = http.get(bridge.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<form id=\"login\"") && !html.contains("app.js"), "the login form, not the dashboard");
    assert_eq!(http.get(bridge.url("/api/overview")).send().await.unwrap().status(), 401);
    assert_eq!(http.get(bridge.url("/api/live")).send().await.unwrap().status(), 401);

    let login = |t: &str, origin: &str| {
        http.post(bridge.url("/login"))
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={t}"))
            .send()
    };
    let wrong = login("dash-token-2", &origin).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(wrong.text().await.unwrap().contains("not valid"));
    let cross = login(token, "http://evil.example").await.unwrap();
    assert_eq!(cross.status(), 403, "a login posted from another origin is refused");
    assert!(cross.headers().get("set-cookie").is_none());

    let ok = login(token, &origin).await.unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.split("; ").any(|a| a == attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains(token), "the cookie is a login id, never the token");
    let pair = cookie.split(';').next().unwrap().to_owned();

    let page = http.get(bridge.url("/")).header("cookie", &pair).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/assets/app.js"), "logged in: the dashboard");
    let api = http.get(bridge.url("/api/overview")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(api.status(), 200);
    let forged = http.get(bridge.url("/api/overview")).header("cookie", "codex_bridge_session=00").send().await;
    assert_eq!(forged.unwrap().status(), 401);
    let by_token = http.get(bridge.url("/api/overview")).header("x-codex-bridge-token", token).send().await;
    assert_eq!(by_token.unwrap().status(), 200, "the API takes the same token as every route");

    let no_csrf = http.post(bridge.url("/logout")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(no_csrf.status(), 403, "a POST without Origin or X-CSRF is refused");
    let out = http.post(bridge.url("/logout")).header("cookie", &pair).header("x-csrf", "1").send().await.unwrap();
    assert_eq!(out.status(), 303);
    let after = http.get(bridge.url("/api/overview")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(after.status(), 401, "the login ended");
    bridge.stop().await;
}

fn save(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
    if std::env::var("CODEX_BRIDGE_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(name), png).unwrap();
    }
}

#[tokio::test]
async fn the_page_in_chromium_shows_the_replay() {
    let Some(browser) = Browser::launch().await else { return };
    let emu = emulator().await;
    let data = tempfile::tempdir().unwrap();
    seed_project(data.path());
    let options = Options { data_dir: Some(data.path().to_owned()), ..Options::default() };
    let bridge = TestBridge::with(&format!("{}/v1", emu.base_url()), options).await;
    let inputs = replay(&bridge).await;
    let base = bridge.url("/");

    browser.open(&format!("{base}#/overview")).await;
    let requests = browser.wait_for("document.querySelector('[data-testid=stat-requests] .value').textContent").await;
    assert_eq!(requests, "6");
    let share = browser.eval("document.querySelector('[data-testid=stat-cached] .note').textContent").await;
    assert!(share.as_str().unwrap().starts_with("cached share ") && share.as_str().unwrap().ends_with('%'), "{share}");
    let write = browser.eval("document.querySelector('[data-testid=stat-cache-write] .value').textContent").await;
    assert_ne!(write, "0", "a field no row reported is never shown as 0");
    browser.wait_for("document.getElementById('live').textContent === 'live'").await;
    save("overview.png", &browser.screenshot().await);

    // A new turn appears without a reload.
    let body = json!({"model": "gpt-5", "input": [user("one more")], "metadata": {"conversation_id": "live-L"}});
    post(&bridge, &body, &[], 70_000).await;
    browser.wait_for("document.body.dataset.liveTurns === '1'").await;
    browser.wait_for("document.querySelector('[data-testid=stat-requests] .value').textContent === '7'").await;

    browser.open(&format!("{base}#/sessions")).await;
    let rows =
        browser.eval("[...document.querySelectorAll('[data-testid=session-row]')].map(r => r.dataset.session)").await;
    assert_eq!(rows, json!(["live-L", "ns-A", "fork-F", "root-R"]));
    save("sessions.png", &browser.screenshot().await);

    browser.open(&format!("{base}#/sessions/fork-F")).await;
    let nodes = browser
        .eval("[...document.querySelectorAll('[data-testid=lineage-node]')].map(n => [n.dataset.role, n.dataset.session, n.dataset.fork])")
        .await;
    assert_eq!(nodes, json!([["root", "root-R", ""], ["fork", "fork-F", "1"]]), "the lineage shows the fork");

    browser.open(&format!("{base}#/sessions/root-R")).await;
    let points =
        browser.eval("document.querySelectorAll('[data-testid=turn-chart] [data-testid=turn-point]').length").await;
    let api_turns = get(&bridge, "/api/sessions/root-R").await["turns"].as_array().unwrap().len();
    assert_eq!(points, json!(api_turns), "one point per turn");
    assert_eq!(api_turns, 4);
    let misses =
        browser.eval("[...document.querySelectorAll('[data-testid=miss-explanation]')].map(e => e.textContent)").await;
    let misses: Vec<&str> = misses.as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(misses.len(), 2, "{misses:?}");
    assert!(misses[0].starts_with("New identity"), "{misses:?}");
    assert!(
        misses[1].contains("The prefix changed at item 1 of input")
            && misses[1].contains("prefix broke at item 1 of input"),
        "{misses:?}"
    );
    save("session.png", &browser.screenshot().await);

    browser.open(&format!("{base}#/sessions/ns-A")).await;
    assert_eq!(browser.eval("document.querySelector('[data-testid=namespace]').textContent").await, "team");

    browser.open(&format!("{base}#/quota")).await;
    let truth = emulator_quota(&emu).await;
    let shown = browser.eval("document.querySelector('[data-testid=quota-primary-used]').textContent").await;
    let expected = truth["rate_limit"]["primary_window"]["used_percent"].as_f64().unwrap();
    assert_eq!(shown, format!("{expected:.1}% used"), "the emulator's 5-hour window");
    let weekly = browser.eval("document.querySelector('[data-testid=quota-secondary-used]').textContent").await;
    let expected = truth["rate_limit"]["secondary_window"]["used_percent"].as_f64().unwrap();
    assert_eq!(weekly, format!("{expected:.1}% used"));
    assert_eq!(browser.eval("document.querySelector('[data-testid=quota-token] .value').textContent").await, "unknown");
    save("quota.png", &browser.screenshot().await);

    browser.open(&format!("{base}#/projects")).await;
    let tasks = browser
        .eval("[...document.querySelectorAll('[data-testid=task-node]')].map(n => n.getAttribute('class'))")
        .await;
    assert_eq!(
        tasks,
        json!(["node task completed", "node task in_progress", "node task blocked", "node task pending"])
    );
    let edges = browser.eval("document.querySelectorAll('[data-testid=task-graph] path.edge').length").await;
    assert_eq!(edges, 4, "one arrow per dependency");
    save("projects.png", &browser.screenshot().await);

    browser
        .call("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}))
        .await;
    browser.open(&format!("{base}#/sessions/root-R")).await;
    let bg = browser.eval("getComputedStyle(document.body).backgroundColor").await;
    assert_eq!(bg, "rgb(17, 19, 23)", "dark scheme");
    save("session-dark.png", &browser.screenshot().await);

    // Nothing but the bridge was fetched.
    let origin = bridge.url("");
    let fetched = browser.requests.lock().unwrap().clone();
    assert!(fetched.iter().any(|u| u.starts_with(&origin)), "{fetched:?}");
    let foreign: Vec<&String> =
        fetched.iter().filter(|u| !u.starts_with(&origin) && !u.starts_with("about:")).collect();
    assert!(foreign.is_empty(), "the page fetched from outside the bridge: {foreign:?}");
    assert_eq!(inputs.len(), 6);
    drop(browser);
    bridge.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn in_chatgpt_mode_the_quota_shows_the_plan_the_token_expiry_and_the_windows() {
    use crate::codex_support::{chatgpt_bridge, login, post};
    let emu = crate::codex_support::emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = login(&emu, dir.path()).await;
    let bridge = chatgpt_bridge(&emu, dir.path(), "").await;
    let before = get(&bridge, "/api/quota").await;
    assert_eq!(before["mode"], "chatgpt");
    assert_eq!(before["primary"], Value::Null, "no response yet: unknown");
    assert_eq!(before["token_expires_at_ms"].as_i64(), tokens.expires_at_ms);
    assert_eq!(before["token_plan"], "plus", "the login token's plan claim");
    let body = json!({"model": "gpt-5.5", "input": [user("hi")], "stream": false});
    let (status, _, text) = post(&bridge, &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    let quota = get(&bridge, "/api/quota").await;
    let truth: Value = client()
        .get(format!("{}/backend-api/wham/usage", emu.base_url()))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(quota["primary"]["used_percent"], truth["rate_limit"]["primary_window"]["used_percent"]);
    assert_eq!(quota["primary"]["reset_at_s"], truth["rate_limit"]["primary_window"]["reset_at"]);
    assert_eq!(quota["secondary"]["reset_at_s"], truth["rate_limit"]["secondary_window"]["reset_at"]);
    assert_eq!(quota["secondary"]["window_minutes"], 10080);
    // Over the upstream socket (transport = auto) the windows come from the `codex.rate_limits` frame; over
    // HTTP from the response headers.
    assert!(quota["source"] == "event" || quota["source"] == "headers", "{quota}");
    bridge.stop().await;
}
