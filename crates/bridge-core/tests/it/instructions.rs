//! The instruction cache (acceptance 4): first fetch, a 304 revalidation after 15 minutes of virtual time,
//! a new release tag picked up, the network down (stale copy used, one warning), the on-disk copy with its
//! metadata, and no network call from the request path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bridge_core::codex::instructions::{DEFAULT_CODEX_FILE, InstructionCache};
use bridge_core::config::codex::InstructionSources;
use serde_json::json;

use crate::codex_support::*;

const MIN: i64 = 60_000;

fn sources(base: &str, dir: &std::path::Path) -> InstructionSources {
    InstructionSources {
        releases_url: format!("{base}/repos/openai/codex/releases/latest"),
        raw_base_url: format!("{base}/openai/codex"),
        opencode_prompt_url: format!("{base}/openai/codex/rust-v0.169.0/codex-rs/core/opencode-codex.txt"),
        fresh_for: Duration::from_secs(15 * 60),
        check_every: Duration::ZERO,
        cache_dir: dir.to_owned(),
    }
}

#[tokio::test]
async fn fetch_revalidate_new_tag_and_offline_on_virtual_time() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(1_800_000_000_000));
    let clock = now.clone();
    let cache = InstructionCache::new(
        sources(&emu.base_url(), dir.path()),
        Arc::new(move || clock.load(Ordering::SeqCst)),
        &[],
    );
    let releases = || emu.state().releases.counters();

    // Not cached: the request path gets nothing and fetches nothing, but the key is now wanted.
    assert!(cache.get(DEFAULT_CODEX_FILE).is_none());
    assert_eq!(releases().latest_calls, 0);
    cache.refresh_stale().await;
    let first = cache.get(DEFAULT_CODEX_FILE).unwrap();
    assert!(first.contains("codex-emulator placeholder"));
    assert_eq!((releases().latest_calls, releases().file_200), (1, 1));

    // Fresh for 15 minutes: no network.
    now.fetch_add(MIN, Ordering::SeqCst);
    cache.refresh_stale().await;
    assert_eq!(releases().latest_calls, 1);

    // After 15 minutes: a conditional GET answered 304; the copy stays.
    now.fetch_add(15 * MIN, Ordering::SeqCst);
    cache.refresh_stale().await;
    assert_eq!((releases().latest_calls, releases().file_200, releases().file_304), (2, 1, 1));
    assert_eq!(cache.get(DEFAULT_CODEX_FILE).unwrap(), first);

    // A new release tag with new content is picked up at the next revalidation.
    let files = BTreeMap::from([(DEFAULT_CODEX_FILE.to_owned(), "You are Codex, release two.\n".to_owned())]);
    emu.state().releases.publish("rust-v0.170.0", files);
    now.fetch_add(16 * MIN, Ordering::SeqCst);
    cache.refresh_stale().await;
    assert_eq!(&*cache.get(DEFAULT_CODEX_FILE).unwrap(), "You are Codex, release two.\n");
    assert_eq!(releases().file_200, 2);

    // The copy and its metadata are on disk; a new process loads them without the network.
    let reloaded = InstructionCache::new(sources(&emu.base_url(), dir.path()), Arc::new(|| 0), &[]);
    reloaded.load_disk();
    let status = reloaded.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].tag.as_deref(), Some("rust-v0.170.0"));
    assert_eq!(&*reloaded.get(DEFAULT_CODEX_FILE).unwrap(), "You are Codex, release two.\n");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("gpt_5_codex_prompt.md.meta.json")).unwrap()).unwrap();
    assert!(meta["etag"].as_str().is_some_and(|e| e.starts_with('"')));
    assert_eq!(releases().latest_calls, 3);

    // Network down: the stale copy stays in use, with one warning for the whole outage.
    emu.shutdown().await;
    for _ in 0..3 {
        now.fetch_add(16 * MIN, Ordering::SeqCst);
        cache.refresh_stale().await;
        assert_eq!(&*cache.get(DEFAULT_CODEX_FILE).unwrap(), "You are Codex, release two.\n");
    }
    assert_eq!(cache.warnings(), 1);
}

#[tokio::test]
async fn the_request_path_never_fetches_instructions() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    login(&emu, dir.path()).await;
    // Copies are stale the moment they arrive, and the background task runs only at startup.
    let extra = "[upstream.codex]\ninstructions = \"codex\"\nopencode_prompt = \"keep\"";
    let toml = config_toml(&emu, dir.path(), extra)
        .replace("instructions_check_secs = 0", "instructions_check_secs = 0\ninstructions_fresh_secs = 0");
    let bridge = crate::support::TestBridge::with(
        &format!("{}/backend-api/codex", emu.base_url()),
        crate::support::Options {
            auth: bridge_core::UpstreamAuth::Chatgpt,
            file: toml,
            data_dir: Some(dir.path().to_owned()),
            ..Default::default()
        },
    )
    .await;
    let cache = bridge.state.codex.as_ref().unwrap().instructions.clone().unwrap();
    for _ in 0..100 {
        if !cache.status().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!cache.status().is_empty(), "warmed in the background at startup");
    let fetches = instruction_fetches(&emu);
    for _ in 0..5 {
        let body = json!({"model": "gpt-5.5", "input": "hi", "instructions": "client prompt"});
        assert_eq!(post(&bridge, &body, &[]).await.0, 200);
    }
    assert_eq!(instruction_fetches(&emu), fetches);
    let last = upstream_bodies(&emu).pop().unwrap();
    assert!(last.body["instructions"].as_str().unwrap().contains("codex-emulator placeholder"));
    assert_eq!(last.body["input"][0]["content"][0]["text"], "client prompt", "kept as a developer message");
    assert_eq!(last.body["input"][0]["role"], "developer");
    bridge.stop().await;
}
