//! PKCE (RFC 7636, method S256) and the OAuth `state`, as codex-wire.md §12.1 fixes them: the verifier is
//! 64 random bytes in base64url without padding (86 characters), the challenge is
//! `base64url(SHA-256(verifier))`, and `state` is 16 random bytes in hex (32 characters).
//!
//! Invariant: randomness comes from the operating system (`ring::rand::SystemRandom`); the verifier is never
//! logged (its `Debug` is redacted).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

use crate::AuthError;

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    /// Sent only in the code exchange.
    pub verifier: String,
    /// Sent in the authorize URL.
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce").field("verifier", &"<redacted>").field("challenge", &self.challenge).finish()
    }
}

impl Pkce {
    /// A fresh verifier and challenge.
    pub fn generate() -> Result<Self, AuthError> {
        let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<64>()?);
        let challenge = challenge_for(&verifier);
        Ok(Self { verifier, challenge })
    }
}

/// `base64url(SHA-256(verifier))` without padding.
pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// A fresh OAuth `state`: 16 random bytes as 32 lowercase hex characters.
pub fn new_state() -> Result<String, AuthError> {
    Ok(random_bytes::<16>()?.iter().map(|b| format!("{b:02x}")).collect())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| AuthError::Random)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn shapes() {
        let p = Pkce::generate().unwrap();
        assert_eq!(p.verifier.len(), 86);
        assert_eq!(p.challenge, challenge_for(&p.verifier));
        assert!(!format!("{p:?}").contains(&p.verifier));
        let s = new_state().unwrap();
        assert_eq!(s.len(), 32);
        assert!(s.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(s, new_state().unwrap());
    }
}
