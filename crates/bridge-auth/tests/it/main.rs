//! Integration tests of bridge-auth against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod flows;
