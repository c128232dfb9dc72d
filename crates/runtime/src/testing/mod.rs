//! Test harness for every crate whose tests need a real runtime: a real
//! Node-RED process ([`NodeRedProcess`]), a tenant of one of the shared
//! real Langflow servers ([`langflow::Server`], [`langflow::Tenant`]), and
//! a loopback proxy that records what was sent through it
//! ([`RecordingProxy`]), so a test can prove what did — and did not —
//! reach a runtime.
//!
//! Always compiled (other crates' tests use it), small, and panicking on
//! failure: these are test fixtures, and a panic with a clear message is
//! the most useful thing a broken fixture can do.

pub mod langflow;
mod node_red;
mod proxy;

pub use node_red::{NODE_RED_DIR_VAR, NodeRedProcess, node_red_dir};
pub use proxy::{HeldRequest, RecordedRequest, RecordingProxy};

use std::path::PathBuf;

/// A fresh, unique directory under the system temp dir.
fn fresh_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    dir
}

/// A random token of 32 hex digits.
fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
