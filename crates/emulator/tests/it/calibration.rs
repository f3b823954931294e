//! The `--http-affinity` calibration (README, "Transport-aware routing"), recomputed with the emulator's own
//! cache model: conversations with an ~8k-token shared prefix (icoretech/codex-pooler #171's lab setup) and
//! three follow-up turns, over HTTP with affinity P on the default 16 machines; the P whose mean follow-up
//! cached shares are closest (least squares) to #171's HTTP numbers 14% / 27% / 41% is the calibrated value.

use codex_emulator::EmulatorConfig;
use codex_emulator::cache::{BlockHash, block_chain};
use codex_emulator::config::CALIBRATED_HTTP_AFFINITY;
use codex_emulator::model::{CacheModel, CacheRequest};

const REPORTED: [f64; 3] = [0.14, 0.27, 0.41];
const CONVERSATIONS: usize = 240;

/// Each conversation's 4 prompts: its own ~8k-token prefix, then +300 tokens per turn.
fn prompts() -> Vec<Vec<(Vec<u32>, Vec<BlockHash>)>> {
    (0..CONVERSATIONS as u32)
        .map(|c| {
            (0..4u32)
                .map(|turn| {
                    let tokens: Vec<u32> = (c * 100_000..c * 100_000 + 8_000 + 300 * turn).collect();
                    let chain = block_chain("gpt-5.5", &tokens, 128);
                    (tokens, chain)
                })
                .collect()
        })
        .collect()
}

/// Mean cached share of follow-up turns 1..=3 with affinity `p` (turns 10 s apart).
fn follow_up_shares(p: f64, prompts: &[Vec<(Vec<u32>, Vec<BlockHash>)>]) -> [f64; 3] {
    let mut m = CacheModel::new(&EmulatorConfig { http_affinity: p, routing_seed: 7, ..EmulatorConfig::default() });
    let mut sums = [0.0; 3];
    for (c, turns) in prompts.iter().enumerate() {
        let key = format!("conv-{c}");
        for (turn, (tokens, chain)) in turns.iter().enumerate() {
            let req = CacheRequest { model: "gpt-5.5", tokens, prompt_cache_key: Some(&key), session_id: None };
            let o = m.serve_chain(&req, chain, 1_000_000 + turn as u64 * 10_000);
            if turn > 0 {
                sums[turn - 1] += o.cached_tokens as f64 / o.input_tokens as f64;
            }
        }
    }
    sums.map(|s| s / prompts.len() as f64)
}

fn error(shares: &[f64; 3]) -> f64 {
    shares.iter().zip(REPORTED).map(|(a, b)| (a - b).powi(2)).sum()
}

#[test]
fn the_calibrated_affinity_is_the_least_squares_fit_to_the_reported_http_shares() {
    let prompts = prompts();
    // a coarse pass over 0.00..=1.00, then steps of 0.01 around the best coarse value
    let mut best = (f64::INFINITY, 0.0, [0.0; 3]);
    let consider = |p: f64, best: &mut (f64, f64, [f64; 3])| {
        let shares = follow_up_shares(p, &prompts);
        let err = error(&shares);
        if err < best.0 {
            *best = (err, p, shares);
        }
    };
    for step in 0..=20 {
        consider(f64::from(step) * 0.05, &mut best);
    }
    let coarse = best.1;
    for step in -4..=4 {
        let p = coarse + f64::from(step) * 0.01;
        if (0.0..=1.0).contains(&p) {
            consider(p, &mut best);
        }
    }
    let (_, p, shares) = best;
    eprintln!("best fit P = {p:.2}, follow-up shares {shares:.3?} vs reported {REPORTED:?}");
    assert!((p - CALIBRATED_HTTP_AFFINITY).abs() <= 0.03, "fit {p} vs documented {CALIBRATED_HTTP_AFFINITY}");
    // the default (1.0) keeps every follow-up on its machine
    let sticky = follow_up_shares(1.0, &prompts);
    assert!(sticky.iter().all(|s| *s > 0.95), "{sticky:?}");
}
