//! Black-box tests of flotilla over real HTTP, against the real Docker daemon and the real
//! embedded store. One binary (one link) for all of them; modules by subject.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod agents;
mod auth;
mod avatar;
mod docs;
mod durability;
mod files;
mod logs;
mod stats;
mod templates;
