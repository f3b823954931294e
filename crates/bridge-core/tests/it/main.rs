//! Integration tests of the gateway through its HTTP interface, against a scripted upstream on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod access;
mod errors;
mod journal;
mod streaming;
