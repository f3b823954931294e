//! Network side of the instruction cache: the latest release tag and a conditional GET with `ETag`.
//! Only the background refresher calls these; nothing on the request path does.

use std::time::Duration;

use reqwest::StatusCode;

/// The answer to a conditional GET.
pub enum Fetched {
    /// 200: new content and its ETag.
    Content { text: String, etag: Option<String> },
    /// 304: the cached copy is current.
    NotModified,
}

/// An HTTP client for GitHub-like sources: 20 s timeout, no proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("codex-bridge/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// `tag_name` of the latest release.
pub async fn latest_tag(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let r = http
        .get(url)
        .header("accept", "application/vnd.github+json")
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", r.status().as_u16()));
    }
    let v: serde_json::Value = r.json().await.map_err(|e| format!("GET {url}: {e}"))?;
    v.get("tag_name")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("GET {url}: no tag_name"))
}

/// GET `url`, with `If-None-Match: etag` when given.
pub async fn conditional_get(http: &reqwest::Client, url: &str, etag: Option<&str>) -> Result<Fetched, String> {
    let mut req = http.get(url);
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    let r = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
    match r.status() {
        StatusCode::NOT_MODIFIED if etag.is_some() => Ok(Fetched::NotModified),
        s if s.is_success() => {
            let etag = r.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let text = r.text().await.map_err(|e| format!("GET {url}: {e}"))?;
            if text.trim().is_empty() {
                return Err(format!("GET {url}: empty body"));
            }
            Ok(Fetched::Content { text, etag })
        }
        s => Err(format!("GET {url}: HTTP {}", s.as_u16())),
    }
}
