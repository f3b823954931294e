//! Bridge access tokens.

use crate::support::*;

#[tokio::test]
async fn wrong_or_missing_tokens_get_401_and_health_stays_open() {
    let upstream = ScriptedUpstream::start().await;
    let bridge =
        TestBridge::with(&upstream.url(), Options { access_tokens: Some("tok-1,tok-2".into()), ..Options::default() })
            .await;
    let body = r#"{"model":"m","input":"x","stream":true}"#;
    for token in [None, Some("nope")] {
        let mut req = client().post(bridge.url("/v1/responses")).body(body);
        if let Some(t) = token {
            req = req.header("x-codex-bridge-token", t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["error"]["code"], "invalid_bridge_token");
    }
    for path in ["/metrics", "/v1/models"] {
        assert_eq!(client().get(bridge.url(path)).send().await.unwrap().status(), 401, "{path}");
    }
    assert_eq!(client().get(bridge.url("/health")).send().await.unwrap().status(), 200);
    // In passthrough mode the token travels in x-codex-bridge-token and Authorization goes upstream.
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .header("x-codex-bridge-token", "tok-2")
        .header("authorization", "Bearer upstream-cred")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let seen = &upstream.seen()[0];
    assert_eq!(seen.headers["authorization"], "Bearer upstream-cred");
    assert!(seen.headers.get("x-codex-bridge-token").is_none(), "the bridge token never goes upstream");
    bridge.stop().await;
}

#[tokio::test]
async fn bearer_token_works_when_the_bridge_owns_the_credential() {
    let upstream = ScriptedUpstream::start().await;
    let options =
        Options { access_tokens: Some("tok-1".into()), auth: bridge_core::UpstreamAuth::ApiKey, ..Options::default() };
    let bridge = TestBridge::with(&upstream.url(), options).await;
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .header("authorization", "Bearer tok-1")
        .body(r#"{"model":"m","input":"x","stream":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    assert_eq!(upstream.seen()[0].headers["authorization"], "Bearer sk-bridge-owned-key");
    bridge.stop().await;
}
