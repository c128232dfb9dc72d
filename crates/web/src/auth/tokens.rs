//! API token secrets: `sh_` and 32 random bytes, shown once. The store
//! keeps their SHA-256: a secret of 256 random bits needs no slow hash.

use sha2::{Digest, Sha256};

/// Marks a Stagehand token in logs and secret scanners.
pub const PREFIX: &str = "sh_";

/// A new token secret.
pub fn new_secret() -> String {
    format!("{PREFIX}{}", super::session::random_token())
}

/// What the store keeps instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_unique_and_hashed() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with(PREFIX) && a.len() > 40);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert!(!hash_secret(&a).contains(&a));
    }
}
