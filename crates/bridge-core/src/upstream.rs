//! The upstream HTTP client and the one retry policy.
//!
//! One pooled keep-alive client per bridge, with a connect timeout, a bound on the wait for each attempt's
//! response head (504), and no total timeout on streams (they may run for many minutes; the per-read idle
//! timeout lives in [`crate::pump`]). Retries happen only here and only before anything has been sent to the
//! client: connect errors and 5xx with exponential backoff, 429 only when it carries a `Retry-After` no longer
//! than `max_retry_after`; all retries of one request share one total budget (`retry_budget`). The
//! credential ([`Credentials`]) is an input: after a 401 with ChatGPT tokens the same loop refreshes the
//! token once and sends again; a second 401 is `chatgpt_login_required`.
//!
//! Invariants: the upstream URL is shown only redacted ([`UpstreamConfig::shown_url`]); hop-by-hop headers
//! (the fixed list and any named in `Connection`) never go upstream; when the bridge holds the upstream
//! credential, the client's own credentials and account selectors (`Cookie`, `OpenAI-Organization`,
//! `OpenAI-Project`) do not either.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use bridge_types::ApiError;
use bytes::Bytes;

use crate::config::UpstreamConfig;
use crate::credentials::Credentials;
use crate::errors::bad_gateway;
use crate::metrics::Metrics;

/// Request headers never forwarded upstream (hop-by-hop, framing, and the bridge's own token).
const DROP_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "accept-encoding",
    "x-codex-bridge-token",
    "x-codex-bridge-cwd",
];

/// Client headers dropped when the bridge sends its own credential: they would select another account or
/// leak the client's own session to an upstream the client did not address.
const DROP_WITH_BRIDGE_CREDENTIAL: &[&str] = &["cookie", "openai-organization", "openai-project"];

/// Response headers never copied back to the client.
pub const DROP_RESPONSE_HEADERS: &[&str] =
    &["content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding", "trailer", "upgrade"];

/// The client for one upstream base URL.
pub struct Upstream {
    client: reqwest::Client,
    config: UpstreamConfig,
    credentials: Credentials,
    responses_url: String,
    models_url: String,
}

impl Upstream {
    /// Builds the pooled client.
    pub fn new(config: UpstreamConfig, credentials: Credentials) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .http1_only()
            .no_proxy()
            .build()?;
        Ok(Self {
            responses_url: format!("{}/responses", config.url),
            models_url: format!("{}/models", config.url),
            client,
            config,
            credentials,
        })
    }

    /// The upstream account marker for a client's request ([`Credentials::account_marker`]).
    pub fn account_marker(&self, client: &HeaderMap) -> String {
        self.credentials.account_marker(client)
    }

    /// The upstream settings.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Headers to send upstream, derived from the client's (the credential is added by [`Self::send`]).
    pub fn request_headers(&self, client: &HeaderMap, streaming: bool) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(client.len() + 2);
        let bridge_credential = self.credentials.held_by_bridge();
        // Headers the client declared hop-by-hop (`Connection: x-foo`) end here too.
        let declared: Vec<String> = client
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        for (name, value) in client {
            let n = name.as_str();
            if DROP_REQUEST_HEADERS.contains(&n)
                || declared.iter().any(|d| d == n)
                || (bridge_credential && (n == "authorization" || DROP_WITH_BRIDGE_CREDENTIAL.contains(&n)))
            {
                continue;
            }
            out.append(name.clone(), value.clone());
        }
        if !out.contains_key(header::CONTENT_TYPE) {
            out.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if streaming {
            out.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        }
        out
    }

    /// POSTs a Responses request with the upstream credential under the retry policy (module docs).
    /// Returns the first response that is not retried.
    pub async fn send(
        &self,
        mut headers: HeaderMap,
        body: Bytes,
        metrics: &Metrics,
    ) -> Result<reqwest::Response, ApiError> {
        let mut applied = self.credentials.apply(&mut headers).await?;
        let mut refreshed = false;
        let started = Instant::now();
        let budget_end = started + self.config.retry_budget;
        let mut attempt: u32 = 0;
        loop {
            // The first attempt may wait the whole head timeout; a retry only what is left of the budget.
            let limit = if attempt == 0 {
                self.config.response_head_timeout
            } else {
                budget_end.saturating_duration_since(Instant::now()).min(self.config.response_head_timeout)
            };
            let request = self.client.post(&self.responses_url).headers(headers.clone()).body(body.clone()).send();
            let result = match tokio::time::timeout(limit, request).await {
                Ok(result) => result,
                Err(_) if attempt == 0 => return Err(head_timeout(self.config.response_head_timeout)),
                Err(_) => return Err(self.gave_up(started, attempt + 1, "the retry budget ran out")),
            };
            let retry_in = match &result {
                Err(e) => {
                    if attempt >= self.config.max_retries {
                        return Err(bad_gateway(attempts_note(describe(e, &self.config), started, attempt + 1)));
                    }
                    Metrics::count(&metrics.upstream_retries, "connect", 1);
                    backoff(attempt)
                }
                Ok(r) if r.status().as_u16() == 401 => {
                    if refreshed {
                        return Err(crate::credentials::login_required("the upstream refused the refreshed token"));
                    }
                    match self.credentials.refresh(&applied, &mut headers).await? {
                        Some(fresh) => {
                            Metrics::count(&metrics.upstream_retries, "401", 1);
                            applied = fresh;
                            refreshed = true;
                            Duration::ZERO
                        }
                        None => return result.map_err(|e| bad_gateway(describe(&e, &self.config))),
                    }
                }
                Ok(r) if r.status().as_u16() == 429 => match retry_after(r.headers()) {
                    Some(wait) if attempt < self.config.max_retries && wait <= self.config.max_retry_after => {
                        Metrics::count(&metrics.upstream_retries, "429", 1);
                        wait
                    }
                    _ => return result.map_err(|e| bad_gateway(describe(&e, &self.config))),
                },
                Ok(r) if r.status().is_server_error() && attempt < self.config.max_retries => {
                    Metrics::count(&metrics.upstream_retries, "5xx", 1);
                    retry_after(r.headers())
                        .filter(|w| *w <= self.config.max_retry_after)
                        .unwrap_or_else(|| backoff(attempt))
                }
                Ok(_) => return result.map_err(|e| bad_gateway(describe(&e, &self.config))),
            };
            // A retry that could not start before the budget ends is not made: the last answer stands.
            if Instant::now() + retry_in >= budget_end {
                return match result {
                    Ok(response) => Ok(response),
                    Err(e) => Err(bad_gateway(attempts_note(describe(&e, &self.config), started, attempt + 1))),
                };
            }
            attempt += 1;
            tracing::debug!(attempt, wait_ms = retry_in.as_millis() as u64, "retrying upstream request");
            tokio::time::sleep(retry_in).await;
        }
    }

    fn gave_up(&self, started: Instant, attempts: u32, why: &str) -> ApiError {
        let mut e = head_timeout(self.config.response_head_timeout);
        e.message = format!(
            "the upstream {} did not answer: {why} after {attempts} attempts in {} ms (upstream.retry_budget_ms)",
            self.config.shown_url(),
            started.elapsed().as_millis()
        );
        e
    }

    /// Puts the upstream credential on `headers`, as [`Self::send`] does (the WebSocket handshake).
    pub async fn authorize(&self, headers: &mut HeaderMap) -> Result<crate::credentials::Applied, ApiError> {
        self.credentials.apply(headers).await
    }

    /// After a 401 on the handshake: the refreshed credential on `headers` (`Ok(None)`: nothing to refresh).
    pub async fn reauthorize(
        &self,
        applied: &crate::credentials::Applied,
        headers: &mut HeaderMap,
    ) -> Result<Option<crate::credentials::Applied>, ApiError> {
        self.credentials.refresh(applied, headers).await
    }

    /// GET `{base}/models` with the upstream credential (for `/v1/models` when none are configured).
    pub async fn models(&self, client_headers: &HeaderMap) -> Result<reqwest::Response, ApiError> {
        let mut headers = self.request_headers(client_headers, false);
        headers.remove(header::CONTENT_TYPE);
        self.credentials.apply(&mut headers).await?;
        self.client
            .get(&self.models_url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| bad_gateway(describe(&e, &self.config)))
    }
}

/// 200 ms, 400 ms, 800 ms, ... capped at 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(5))
}

/// `Retry-After` in seconds (fractions allowed) or `retry-after-ms`.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) =
        headers.get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok())
    {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    let secs = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// `what`, with the attempts and time spent when there was more than one attempt.
fn attempts_note(what: String, started: Instant, attempts: u32) -> String {
    if attempts <= 1 {
        return what;
    }
    format!("{what} (gave up after {attempts} attempts in {} ms)", started.elapsed().as_millis())
}

/// 504 when an upstream attempt (or a WebSocket handshake) produced no response head in time.
pub fn head_timeout(limit: Duration) -> ApiError {
    let mut e = crate::errors::gateway_timeout(limit);
    e.message = format!(
        "the upstream sent no response head within {} ms (upstream.response_head_timeout_ms)",
        limit.as_millis()
    );
    e
}

/// A transport error in words, without any header or body content, naming the upstream only redacted.
fn describe(e: &reqwest::Error, config: &UpstreamConfig) -> String {
    let base = config.shown_url();
    let what = if e.is_connect() {
        "could not connect to"
    } else if e.is_timeout() {
        "timed out talking to"
    } else {
        "request failed to"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = redact_urls_in(&s.to_string());
        source = s.source();
    }
    if detail.is_empty() {
        format!("{what} the upstream {base}")
    } else {
        format!("{what} the upstream {base}: {detail}")
    }
}

/// Any `scheme://...` word in an error text, redacted (library errors sometimes quote the URL).
pub fn redact_urls_in(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            if w.contains("://") {
                let trimmed = w.trim_start_matches(['(', '"', '\'']).trim_end_matches([')', '"', '\'', ',', ':']);
                w.replace(trimmed, &crate::config::redact_url(trimmed))
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Copies upstream response headers worth returning (rate limits, request ids, model) to the client response.
pub fn copy_response_headers(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if DROP_RESPONSE_HEADERS.contains(&name.as_str()) || name == header::CONTENT_TYPE {
            continue;
        }
        if let Ok(n) = HeaderName::from_bytes(name.as_str().as_bytes()) {
            to.append(n, value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(800));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }
}
