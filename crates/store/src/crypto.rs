//! Encryption of env values at rest (AES-256-GCM), and the key's life:
//! from `STAGEHAND_SECRET_KEY`, or generated once into the data directory.
//!
//! Each ciphertext is bound to its instance and key by the AEAD's associated
//! data, so a value copied to another row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use stagehand_domain::{EnvKey, InstanceId, SecretValue};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The file the generated key is kept in, inside the data directory.
pub const KEY_FILE: &str = "secret.key";

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "STAGEHAND_SECRET_KEY must be 32 bytes encoded as base64 (e.g. `openssl rand -base64 32`)"
    )]
    BadEnvKey,
    #[error(
        "the key file {0} is not 32 bytes of base64; restore the right file or set STAGEHAND_SECRET_KEY"
    )]
    BadKeyFile(PathBuf),
    #[error("could not read or create the key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A 256-bit key. Never printed.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&key);
        Self(bytes)
    }

    /// Parses 32 bytes of base64.
    pub fn from_base64(text: &str) -> Option<Self> {
        let raw = Zeroizing::new(B64.decode(text.trim()).ok()?);
        let mut bytes = Zeroizing::new([0u8; 32]);
        if raw.len() != 32 {
            return None;
        }
        bytes.copy_from_slice(&raw);
        Some(Self(bytes))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.0.as_slice()))
    }

    /// The key from `STAGEHAND_SECRET_KEY` if given, else the one in
    /// `data_dir/secret.key`, generated there (mode 0600) on first start.
    pub fn load_or_generate(from_env: Option<&str>, data_dir: &Path) -> Result<Self, KeyError> {
        if let Some(text) = from_env {
            return Self::from_base64(text).ok_or(KeyError::BadEnvKey);
        }
        let path = data_dir.join(KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                // A key file left readable by others is made private again.
                crate::files::private_file(&path).map_err(io)?;
                Self::from_base64(&text).ok_or_else(|| KeyError::BadKeyFile(path.clone()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::files::create_private_dir(data_dir).map_err(io)?;
                let key = Self::generate();
                let mut file = create_private(&path).map_err(io)?;
                file.write_all(key.to_base64().as_bytes()).map_err(io)?;
                file.write_all(b"\n").map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// A value as stored: a fresh 96-bit nonce and the ciphertext with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Decryption failed: wrong key, or data that is not what was sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored value does not decrypt with this key")]
pub struct OpenError;

/// Seals and opens env values with one key.
#[derive(Clone)]
pub struct Cipher(Aes256Gcm);

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

/// What a key check seals; opening it proves the key is the right one.
const KEY_CHECK_PLAINTEXT: &str = "stagehand key check v1";
const KEY_CHECK_AAD: &[u8] = b"stagehand:key-check";

impl Cipher {
    pub fn new(key: &SecretKey) -> Self {
        Self(Aes256Gcm::new(key.0.as_slice().into()))
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed {
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        // Encryption with a valid key and nonce only fails for inputs over
        // 64 GiB; env values are capped far below that.
        let ciphertext = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.nonce.len() != 12 {
            return Err(OpenError);
        }
        self.0
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError)
    }

    /// Seals an env value, bound to its instance and key.
    pub fn seal_env(&self, instance: InstanceId, key: &EnvKey, value: &SecretValue) -> Sealed {
        self.seal(value.expose().as_bytes(), &env_aad(instance, key))
    }

    /// Opens an env value sealed by [`Cipher::seal_env`] for the same row.
    pub fn open_env(
        &self,
        instance: InstanceId,
        key: &EnvKey,
        sealed: &Sealed,
    ) -> Result<SecretValue, OpenError> {
        let bytes = self.open(sealed, &env_aad(instance, key))?;
        String::from_utf8(bytes.to_vec())
            .map(SecretValue::new)
            .map_err(|_| OpenError)
    }

    /// Seals a runtime connection's credentials, bound to its instance.
    pub fn seal_runtime_auth(&self, instance: InstanceId, auth: &SecretValue) -> Sealed {
        self.seal(auth.expose().as_bytes(), &runtime_aad(instance))
    }

    /// Opens credentials sealed by [`Cipher::seal_runtime_auth`].
    pub fn open_runtime_auth(
        &self,
        instance: InstanceId,
        sealed: &Sealed,
    ) -> Result<SecretValue, OpenError> {
        let bytes = self.open(sealed, &runtime_aad(instance))?;
        String::from_utf8(bytes.to_vec())
            .map(SecretValue::new)
            .map_err(|_| OpenError)
    }

    /// A key check to store beside the data: base64 of nonce and ciphertext.
    pub fn key_check(&self) -> String {
        let s = self.seal(KEY_CHECK_PLAINTEXT.as_bytes(), KEY_CHECK_AAD);
        format!("{}.{}", B64.encode(s.nonce), B64.encode(s.ciphertext))
    }

    /// Whether a stored key check was made with this key.
    pub fn verify_key_check(&self, stored: &str) -> bool {
        let Some((n, c)) = stored.split_once('.') else {
            return false;
        };
        let (Ok(nonce), Ok(ciphertext)) = (B64.decode(n), B64.decode(c)) else {
            return false;
        };
        self.open(&Sealed { nonce, ciphertext }, KEY_CHECK_AAD)
            .is_ok_and(|p| p.as_slice() == KEY_CHECK_PLAINTEXT.as_bytes())
    }
}

/// Binds sealed credentials to their instance: moved to another row they
/// do not open.
fn runtime_aad(instance: InstanceId) -> Vec<u8> {
    format!("stagehand:runtime:{}", instance.0).into_bytes()
}

fn env_aad(instance: InstanceId, key: &EnvKey) -> Vec<u8> {
    format!("stagehand:env:{instance}:{key}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EnvKey {
        EnvKey::parse("DB_PASSWORD").unwrap()
    }

    #[test]
    fn a_value_round_trips_and_the_ciphertext_does_not_contain_it() {
        let c = Cipher::new(&SecretKey::generate());
        let id = InstanceId::new();
        let sealed = c.seal_env(id, &key(), &SecretValue::new("hunter2-hunter2".into()));
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            c.open_env(id, &key(), &sealed).unwrap().expose(),
            "hunter2-hunter2"
        );
    }

    #[test]
    fn a_value_moved_to_another_row_does_not_decrypt() {
        let c = Cipher::new(&SecretKey::generate());
        let sealed = c.seal_env(InstanceId::new(), &key(), &SecretValue::new("v".into()));
        assert_eq!(
            c.open_env(InstanceId::new(), &key(), &sealed),
            Err(OpenError)
        );
    }

    #[test]
    fn another_key_fails_the_key_check() {
        let check = Cipher::new(&SecretKey::generate()).key_check();
        assert!(!Cipher::new(&SecretKey::generate()).verify_key_check(&check));
    }

    #[test]
    fn the_generated_key_file_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("stagehand-key-{}", InstanceId::new()));
        let a = SecretKey::load_or_generate(None, &dir).unwrap();
        let b = SecretKey::load_or_generate(None, &dir).unwrap();
        assert_eq!(a.to_base64(), b.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_malformed_env_key_is_refused() {
        assert!(matches!(
            SecretKey::load_or_generate(Some("short"), Path::new("/nonexistent")),
            Err(KeyError::BadEnvKey)
        ));
    }
}
