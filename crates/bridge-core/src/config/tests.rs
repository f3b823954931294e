use super::*;

fn settings() -> Settings {
    Settings { upstream_auth: Some(UpstreamAuth::Passthrough), ..Settings::default() }
}

#[test]
fn defaults() {
    let c = Config::resolve(settings(), None, Path::new("x"), PathBuf::from("/d")).unwrap();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.upstream.url, DEFAULT_UPSTREAM);
    assert_eq!(c.data_dir, PathBuf::from("/d"));
    assert!(c.upstream.force_stream);
}

#[test]
fn settings_override_file() {
    let file =
        "listen = \"127.0.0.1:9\"\nstore = \"memory://\"\n[upstream]\nurl = \"http://a/v1/\"\nidle_timeout_ms = 5\n";
    let s = Settings { listen: Some("127.0.0.1:7".into()), ..settings() };
    let c = Config::resolve(s, Some(file), Path::new("x"), PathBuf::from("/d")).unwrap();
    assert_eq!(c.listen.port(), 7);
    assert_eq!(c.upstream.url, "http://a/v1");
    assert_eq!(c.store.as_deref(), Some("memory://"));
    assert_eq!(c.upstream.idle_timeout, Duration::from_millis(5));
}

#[test]
fn unknown_file_keys_are_errors() {
    let err = Config::resolve(settings(), Some("lisen = \"x\""), Path::new("f.toml"), PathBuf::new()).unwrap_err();
    assert!(err.to_string().contains("f.toml"), "{err}");
}

#[test]
fn open_listen_needs_tokens() {
    let s = Settings { listen: Some("0.0.0.0:0".into()), ..settings() };
    assert!(matches!(
        Config::resolve(s.clone(), None, Path::new("x"), PathBuf::new()),
        Err(ConfigError::OpenWithoutTokens(_))
    ));
    let s = Settings { access_tokens: Some("t1, t2".into()), ..s };
    let c = Config::resolve(s, None, Path::new("x"), PathBuf::new()).unwrap();
    assert_eq!(c.access_tokens.len(), 2);
}

#[test]
fn api_key_mode_needs_a_key_and_hides_it() {
    let s = Settings { upstream_auth: Some(UpstreamAuth::ApiKey), ..Settings::default() };
    let err = Config::resolve(s.clone(), None, Path::new("x"), PathBuf::new()).unwrap_err();
    assert!(err.to_string().contains("OPENAI_API_KEY"));
    let s = Settings { env_api_key: Some("sk-secret-value".into()), ..s };
    let c = Config::resolve(s, None, Path::new("x"), PathBuf::new()).unwrap();
    assert!(!format!("{c:?}").contains("sk-secret-value"));
}

#[test]
fn cache_section() {
    let file = "[cache]\naffinity = \"key\"\nnamespace_auto = true\n[[cache.namespace_rules]]\nname = \"team\"\nmodel = \"gpt-5\"\n";
    let c = Config::resolve(settings(), Some(file), Path::new("x"), PathBuf::new()).unwrap();
    assert_eq!(c.cache.affinity, crate::config::cache::AffinityPolicy::Key);
    assert!(c.cache.namespace_auto);
    assert_eq!(c.cache.namespace_rules[0].model.as_deref(), Some("gpt-5"));
    let d = Config::resolve(settings(), None, Path::new("x"), PathBuf::new()).unwrap();
    assert_eq!(d.cache, crate::config::cache::CacheConfig::default());
    assert!(Config::resolve(settings(), Some("[cache]\naffinty = \"key\""), Path::new("x"), PathBuf::new()).is_err());
}

#[test]
fn chatgpt_mode_defaults_to_the_codex_backend_with_shaping() {
    let s = Settings { upstream_auth: Some(UpstreamAuth::Chatgpt), ..Settings::default() };
    let c = Config::resolve(s.clone(), None, Path::new("x"), PathBuf::from("/d")).unwrap();
    assert_eq!(c.upstream.url, "https://chatgpt.com/backend-api/codex");
    let shaping = c.upstream.codex.unwrap();
    assert!(shaping.rejected_params.iter().any(|p| p == "max_output_tokens"));
    assert_eq!(shaping.instructions, crate::config::codex::InstructionsMode::Passthrough);
    assert_eq!(c.chatgpt.credentials, PathBuf::from("/d/auth.json"));
    assert_eq!(c.chatgpt.oauth.redirect_uri, "http://localhost:1455/auth/callback");
    let file = "[upstream.codex]\nenabled = false\n[chatgpt]\ncallback_port = 1456\n";
    let c = Config::resolve(s, Some(file), Path::new("x"), PathBuf::from("/d")).unwrap();
    assert!(c.upstream.codex.is_none());
    assert_eq!(c.chatgpt.oauth.redirect_uri, "http://localhost:1456/auth/callback");
    assert_eq!(c.chatgpt.oauth.callback_addr.port(), 1456);
    let typo = "[upstream.codex]\ninstruction = \"codex\"\n";
    assert!(Config::resolve(settings(), Some(typo), Path::new("x"), PathBuf::new()).is_err());
}

#[test]
fn empty_or_blank_access_tokens_are_refused() {
    for file in ["access_tokens = [\"\"]", "access_tokens = [\"ok\", \"  \"]"] {
        let err = Config::resolve(settings(), Some(file), Path::new("x"), PathBuf::new()).unwrap_err();
        assert!(matches!(err, ConfigError::EmptyAccessToken(_)), "{file}: {err}");
    }
    let s = Settings { access_tokens: Some("a,,b".into()), ..settings() };
    assert!(matches!(Config::resolve(s, None, Path::new("x"), PathBuf::new()), Err(ConfigError::EmptyAccessToken(2))));
    // An empty list in the environment is "no tokens", and a non-loopback listener still refuses to start.
    let s = Settings { access_tokens: Some(" ".into()), listen: Some("0.0.0.0:0".into()), ..settings() };
    assert!(matches!(Config::resolve(s, None, Path::new("x"), PathBuf::new()), Err(ConfigError::OpenWithoutTokens(_))));
}

#[test]
fn urls_are_shown_without_credentials() {
    assert_eq!(redact_url("http://user:pass@host:8/v1"), "http://***@host:8/v1");
    assert_eq!(redact_url("https://h/v1?api_key=abc&x=1&token=t#frag"), "https://h/v1?api_key=***&x=1&token=***#frag");
    assert_eq!(redact_url("https://api.openai.com/v1"), "https://api.openai.com/v1");
    assert_eq!(redact_url("http://a@b@host/p"), "http://***@host/p");
    let err = Config::resolve(
        Settings { upstream: Some("ftp://u:secretpw@h".into()), ..settings() },
        None,
        Path::new("x"),
        PathBuf::new(),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("secretpw"), "{err}");
}

#[test]
fn server_limits_have_defaults_and_refuse_nonsense() {
    let c = Config::resolve(settings(), None, Path::new("x"), PathBuf::new()).unwrap();
    assert_eq!(c.server.max_connections, 1024);
    assert_eq!(c.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.upstream.retry_budget, Duration::from_secs(15));
    assert_eq!(c.upstream.response_head_timeout, c.upstream.idle_timeout);
    let err = Config::resolve(settings(), Some("[server]\nidle_timeout_ms = 0\n"), Path::new("x"), PathBuf::new())
        .unwrap_err();
    assert!(err.to_string().contains("server.idle_timeout_ms"), "{err}");
    let file = "body_limit_bytes = 1000\n[server]\nmax_inflight_body_bytes = 999\n";
    let err = Config::resolve(settings(), Some(file), Path::new("x"), PathBuf::new()).unwrap_err();
    assert!(err.to_string().contains("max_inflight_body_bytes"), "{err}");
}

/// The README's configuration tables show the defaults the code uses ([`super::defaults::documented`]): for
/// each key, a table row whose cell names the key has the default as the first code span of the next cell.
#[test]
fn the_readme_tables_show_the_defaults_in_force() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let rows: Vec<Vec<&str>> =
        readme.lines().filter(|l| l.starts_with('|')).map(|l| l.split('|').map(str::trim).collect()).collect();
    let first_code = |cell: &str| cell.split('`').nth(1).map(str::to_owned);
    for (key, value) in super::defaults::documented() {
        let named = format!("`{key}`");
        let shown: Vec<Option<String>> = rows
            .iter()
            .filter_map(|cells| {
                cells.iter().position(|c| *c == named).map(|i| cells.get(i + 1).and_then(|c| first_code(c)))
            })
            .collect();
        assert!(!shown.is_empty(), "the README has no table row for {key}");
        assert!(
            shown.iter().all(|s| s.as_deref() == Some(value.as_str())),
            "README shows {shown:?} for {key}, the code uses {value}"
        );
    }
    // And the defaults are what an empty configuration resolves to.
    let c = Config::resolve(settings(), None, Path::new("x"), PathBuf::from("/d")).unwrap();
    let d = super::defaults::documented();
    let get = |k: &str| d.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(c.server.max_connections.to_string(), get("[server] max_connections"));
    assert_eq!(c.server.client_stall_timeout.as_millis().to_string(), get("[server] client_stall_timeout_ms"));
    assert_eq!(c.upstream.retry_budget.as_millis().to_string(), get("[upstream] retry_budget_ms"));
    assert_eq!(c.listen.to_string(), get("listen"));
    assert_eq!(c.websocket.ingress.to_string(), get("[websocket] ingress"));
    assert_eq!(c.websocket.idle_timeout.as_millis().to_string(), get("[websocket] idle_timeout_ms"));
    assert_eq!(c.websocket.max_sockets.to_string(), get("[websocket] max_sockets"));
}

#[test]
fn websocket_section() {
    let file = "[websocket]\ningress = false\nidle_timeout_ms = 5\nmax_sockets = 3\n";
    let c = Config::resolve(settings(), Some(file), Path::new("x"), PathBuf::new()).unwrap();
    assert!(!c.websocket.ingress);
    assert_eq!(c.websocket.idle_timeout, Duration::from_millis(5));
    assert_eq!(c.websocket.max_sockets, 3);
    let err = Config::resolve(settings(), Some("[websocket]\nmax_sockets = 0\n"), Path::new("x"), PathBuf::new())
        .unwrap_err();
    assert!(err.to_string().contains("websocket.max_sockets"), "{err}");
}
