//! # flotilla — the server
//!
//! The HTTP face of the fleet: configuration, authentication, the route table and start-up.
//! The runtime itself (actors, Docker, store) is the `flotilla-actors` crate; handlers here only
//! parse requests, check the caller and call its `Fleet` handle.
//!
//! - [`config`]: `FLOTILLA_*` environment → [`config::Config`]
//! - [`startup`]: [`startup::Application`] — build, bind, serve, drain
//! - [`auth`]: passwords, JWTs, the `Auth` extractor, login rate limiting
//! - [`routes`]: the route table and handlers, grouped by resource
//! - [`error`]: [`error::ApiError`], the single HTTP error type
//! - [`openapi`]: the OpenAPI document and Swagger UI
//! - [`metrics`]: HTTP request metrics middleware and who may read `/metrics`

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth;
pub mod config;
pub mod error;
pub mod list_cache;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
