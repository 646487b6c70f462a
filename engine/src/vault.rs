//! Secrets at rest: sealed with XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) under one
//! 256-bit key, from configuration (`FLOWSCOPE_SECRET_KEY`, 64 hex digits) or from a key file
//! created on first use. The secret's name is the associated data: a sealed value copied onto
//! another name does not open. Nonces are random (192 bits: no collision in practice).
//! Passwords are hashed here too (argon2id), for the server and the UI's server functions.

use std::path::PathBuf;
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// 64 hex digits, given in configuration.
    Hex(String),
    /// A file holding 64 hex digits; created (mode 0600) when the first secret is stored.
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0}")]
    Key(String),
    #[error("secret \"{0}\" cannot be opened with this server's key (was the key changed or the key file replaced?)")]
    Open(String),
}

pub struct Vault {
    source: KeySource,
    cipher: Mutex<Option<XChaCha20Poly1305>>,
}

fn parse_key(hex_key: &str, from: &str) -> Result<XChaCha20Poly1305, VaultError> {
    let bytes = hex::decode(hex_key.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            VaultError::Key(format!("{from}: the key must be 64 hex digits (32 bytes)"))
        })?;
    let key = Key::try_from(bytes.as_slice())
        .map_err(|_| VaultError::Key(format!("{from}: the key must be 32 bytes")))?;
    Ok(XChaCha20Poly1305::new(&key))
}

impl Vault {
    pub fn new(source: KeySource) -> Vault {
        Vault {
            source,
            cipher: Mutex::new(None),
        }
    }

    /// The cipher; with `create`, a missing key file is made first.
    fn cipher(&self, create: bool) -> Result<XChaCha20Poly1305, VaultError> {
        let mut slot = self.cipher.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let cipher = match &self.source {
            KeySource::Hex(k) => parse_key(k, "FLOWSCOPE_SECRET_KEY")?,
            KeySource::File(path) => {
                let shown = path.display().to_string();
                match std::fs::read_to_string(path) {
                    Ok(text) => parse_key(&text, &shown)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                        let key = Key::generate();
                        let text = format!("{}\n", hex::encode(key.as_slice()));
                        write_new_key(path, &text)
                            .map_err(|e| VaultError::Key(format!("cannot create the key file {shown}: {e}")))?;
                        tracing::info!(file = %shown, "created the secret key file; back it up with the database");
                        XChaCha20Poly1305::new(&key)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(VaultError::Key(format!(
                            "the key file {shown} is missing: restore it, or set FLOWSCOPE_SECRET_KEY"
                        )))
                    }
                    Err(e) => return Err(VaultError::Key(format!("cannot read the key file {shown}: {e}"))),
                }
            }
        };
        *slot = Some(cipher.clone());
        Ok(cipher)
    }

    /// Seals `value` under `name`: `(nonce, ciphertext)`, hex.
    pub fn seal(&self, name: &str, value: &str) -> Result<(String, String), VaultError> {
        let cipher = self.cipher(true)?;
        let nonce = XNonce::generate();
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Key("encryption failed".into()))?;
        Ok((hex::encode(nonce.as_slice()), hex::encode(sealed)))
    }

    /// Opens what [`Vault::seal`] made for `name`.
    pub fn open(&self, name: &str, nonce: &str, ciphertext: &str) -> Result<String, VaultError> {
        let cipher = self.cipher(false)?;
        let bad = || VaultError::Open(name.to_string());
        let nonce = hex::decode(nonce).map_err(|_| bad())?;
        let nonce = XNonce::try_from(nonce.as_slice()).map_err(|_| bad())?;
        let sealed = hex::decode(ciphertext).map_err(|_| bad())?;
        let plain = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes): a PHC string with its own salt.
/// Slow on purpose: call it off the async threads (`spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches a [`hash_password`] string (false for an unreadable one).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// `n` random bytes from the operating system, hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // Without the OS generator no token may be made: failing loudly is the only safe answer.
    if let Err(e) = getrandom::fill(&mut bytes) {
        panic!("the operating system's random number generator failed: {e}");
    }
    hex::encode(bytes)
}

/// A new API token's value: `fs_` and 64 hex digits (recognisable when leaked).
pub fn new_token() -> String {
    format!("fs_{}", random_hex(32))
}

/// What is stored of a token or session cookie: its SHA-256, hex. (They are 256 random bits,
/// so a fast hash is enough; passwords get argon2.)
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Writes a new key file readable by its owner only; never overwrites one.
fn write_new_key(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_under_the_same_name_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/secret.key");
        let vault = Vault::new(KeySource::File(path.clone()));
        // No key yet and nothing sealed: opening says the file is missing.
        assert!(matches!(
            vault.open("A", "00", "00"),
            Err(VaultError::Key(_))
        ));
        let (nonce, sealed) = vault.seal("A", "hunter2").unwrap();
        assert!(!sealed.contains(&hex::encode("hunter2")));
        assert_eq!(vault.open("A", &nonce, &sealed).unwrap(), "hunter2");
        assert!(matches!(
            vault.open("B", &nonce, &sealed),
            Err(VaultError::Open(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The same file opens it again in a new process; another key does not.
        let again = Vault::new(KeySource::File(path));
        assert_eq!(again.open("A", &nonce, &sealed).unwrap(), "hunter2");
        let other = Vault::new(KeySource::Hex("11".repeat(32)));
        assert!(matches!(
            other.open("A", &nonce, &sealed),
            Err(VaultError::Open(_))
        ));
        let bad = Vault::new(KeySource::Hex("xyz".into()));
        assert!(bad.seal("A", "v").is_err());
    }
}
