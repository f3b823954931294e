//! `x-codex-turn-state` tokens: issued with every response (HTTP response header, WebSocket
//! `codex.response.metadata` event) and routing a later request that carries a valid one to the machine
//! that issued it.
//!
//! Format: `ts1.<machine>.<serial>.<mac>` where `mac` is 16 hex digits of blake3 over (seed, machine,
//! serial). Invariants: a token is valid only if its mac verifies, so a forged or damaged token routes
//! nowhere (the request is routed as if it had none); parsing never panics.

/// The header (HTTP) and `client_metadata` key (WebSocket) carrying the token.
pub const TURN_STATE: &str = "x-codex-turn-state";

fn mac(seed: u64, machine: usize, serial: u64) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"turn-state");
    h.update(&seed.to_le_bytes());
    h.update(&(machine as u64).to_le_bytes());
    h.update(&serial.to_le_bytes());
    h.finalize().to_hex()[..16].to_owned()
}

/// A token for `machine`.
pub fn issue(seed: u64, machine: usize, serial: u64) -> String {
    format!("ts1.{machine}.{serial}.{}", mac(seed, machine, serial))
}

/// The issuing machine of a valid token below `machines`.
pub fn verify(seed: u64, token: &str, machines: usize) -> Option<usize> {
    let mut parts = token.trim().split('.');
    let (Some("ts1"), Some(m), Some(s), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let machine: usize = m.parse().ok()?;
    let serial: u64 = s.parse().ok()?;
    (machine < machines && mac(seed, machine, serial) == tag).then_some(machine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_forgeries_do_not() {
        let t = issue(7, 3, 42);
        assert_eq!(verify(7, &t, 16), Some(3));
        assert_eq!(verify(8, &t, 16), None);
        assert_eq!(verify(7, &t, 2), None);
        assert_eq!(verify(7, &t.replace("ts1.3.", "ts1.4."), 16), None);
        for junk in ["", "ts1", "ts1.a.b.c", "ts1.1.2.3.4", "x.1.2.abcd"] {
            assert_eq!(verify(7, junk, 16), None, "{junk}");
        }
    }
}
