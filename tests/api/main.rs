//! Black-box tests of flotilla over real HTTP, against the real Docker daemon and the real
//! embedded store. One binary (one link) for all of them; modules by subject.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod agents;
mod auth;
mod avatar;
mod context;
mod credentials;
mod docs;
mod durability;
mod events;
mod faults;
mod files;
mod folders;
mod hardening;
mod hostile;
mod logs;
mod metrics;
mod rate_limits;
mod settings;
mod sharing;
mod ssh;
mod stats;
mod templates;
