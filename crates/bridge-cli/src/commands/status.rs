//! `codex-bridge status`: who is logged in (account, plan, email, token expiry — never a token) and what the
//! instruction caches hold and how fresh they are. Reads local files only: no network call.

use bridge_auth::{Credentials, file};
use bridge_core::codex::errors::utc;
use bridge_core::codex::instructions::CacheStatus;
use serde_json::json;

use crate::cli::StatusArgs;

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let config = super::chatgpt_env::credential_config(&args.store)?;
    let path = &config.chatgpt.credentials;
    let credentials = file::load(path)?;
    let cache = bridge_core::codex::runtime::instruction_cache(&config, &[]);
    let caches = cache.status();
    if args.json {
        println!("{}", json_status(credentials.as_ref(), &caches, path));
        return Ok(());
    }
    match &credentials {
        Some(c) => println!("{}", describe(c)),
        None => println!("not logged in: run `codex-bridge login`"),
    }
    println!("credentials: {}", path.display());
    if caches.is_empty() {
        println!("instruction caches: none yet (they warm in the background when `serve` runs in codex mode)");
    }
    for c in &caches {
        println!(
            "instruction cache {}: {}{} bytes, checked {} min ago ({})",
            c.key,
            c.tag.as_deref().map(|t| format!("tag {t}, ")).unwrap_or_default(),
            c.bytes,
            c.age_ms / 60_000,
            if c.fresh { "fresh" } else { "stale" }
        );
    }
    Ok(())
}

/// One line about the credentials, without secrets.
pub fn describe(credentials: &Credentials) -> String {
    match credentials {
        Credentials::ApiKey { .. } => "logged in with an API key".to_owned(),
        Credentials::Chatgpt(t) => {
            let p = t.profile();
            let expiry = match t.expires_at_ms {
                Some(at) if at <= bridge_auth::now_ms() => {
                    format!("expired at {} (refreshed on next use)", utc(at / 1000))
                }
                Some(at) => format!("expires {}", utc(at / 1000)),
                None => "expiry unknown".to_owned(),
            };
            format!(
                "logged in to ChatGPT: account {}, plan {}, email {}; access token {expiry}",
                p.account_id.as_deref().unwrap_or("unknown"),
                p.plan_type.as_deref().unwrap_or("unknown"),
                p.email.as_deref().unwrap_or("unknown"),
            )
        }
    }
}

fn json_status(credentials: Option<&Credentials>, caches: &[CacheStatus], path: &std::path::Path) -> serde_json::Value {
    let login = match credentials {
        None => json!(null),
        Some(Credentials::ApiKey { .. }) => json!({"kind": "api_key"}),
        Some(Credentials::Chatgpt(t)) => {
            let p = t.profile();
            json!({"kind": "chatgpt", "account_id": p.account_id, "plan": p.plan_type, "email": p.email,
                   "expires_at_ms": t.expires_at_ms})
        }
    };
    let caches: Vec<_> = caches
        .iter()
        .map(|c| json!({"key": c.key, "tag": c.tag, "bytes": c.bytes, "age_ms": c.age_ms, "fresh": c.fresh}))
        .collect();
    json!({"login": login, "credentials": path, "instruction_caches": caches})
}
