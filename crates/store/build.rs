//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!`
//! embeds the migrations at compile time, and on stable Rust it cannot ask
//! Cargo to watch the directory itself.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
