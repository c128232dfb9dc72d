//! The web server over HTTP: the real router on a real socket, against
//! PostgreSQL when the test command provides one (SQLite otherwise, and
//! explicitly where it matters). The test command provides PostgreSQL;
//! `play_on_postgres` fails without it rather than skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod admin;
mod api;
mod auth;
mod connections;
mod delivery;
mod escalation;
mod failures;
mod grants;
mod harness;
mod inputs;
mod pipeline_page;
mod play;
mod protection;
mod queries;
mod runtimes;
mod runtimes_langflow;
mod secrets;
mod snapshots;
mod text;
