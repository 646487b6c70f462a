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

/// `FLOWSCOPE_SECRET_<NAME>` variables that configure the vault instead of naming a secret:
/// the master key is never a template value.
pub const VAULT_SETTINGS: &[&str] = &["KEY", "KEY_FILE"];

/// What can go wrong sealing or opening a secret.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key is missing or malformed.
    #[error("{0}")]
    Key(String),
    /// A secret does not open with this key.
    #[error("secret \"{0}\" cannot be opened with this server's key (was the key changed or the key file replaced?)")]
    Open(String),
}

/// Seals and opens secrets at rest (XChaCha20-Poly1305) with the server's key.
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
    /// A vault whose key comes from `source`, read when first needed.
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
/// Slow on purpose: call it off the async threads ([`bounded_hash`]).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
    let argon = argon2::Argon2::default();
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for the salt: {e}"))?;
    let mut out = [0u8; 32];
    with_blocks(&argon, |blocks| {
        argon.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
    })
    .map_err(|e| format!("cannot hash the password: {e}"))?;
    let phc = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches a [`hash_password`] string (false for an unreadable one).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::phc::{Output, PasswordHash};
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(parsed.algorithm.as_str()),
        argon2::Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    // A stored hash's cost is ours; an absurd one (a tampered row) is refused, not run.
    if params.m_cost() > 1 << 20 || params.t_cost() > 16 {
        return false;
    }
    let argon = argon2::Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let salt: &[u8] = salt.as_ref();
    let computed = with_blocks(&argon, |blocks| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
    });
    // `Output`'s comparison takes constant time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == *expected)
}

thread_local! {
    /// The argon2 working memory of this thread, kept between hashes. Allocated afresh each
    /// time, the allocator cannot reuse the 19 MiB once small allocations land in it: the
    /// process grew by one buffer per sign-in.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_blocks<T>(argon: &argon2::Argon2<'_>, f: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        let n = argon.params().block_count();
        if blocks.len() < n {
            blocks.resize(n, argon2::Block::new());
        }
        f(&mut blocks[..n])
    })
}

/// Argon2 hashes running at once, process-wide: each holds 19 MiB, so a flood of sign-ins
/// waits here instead of growing memory.
pub const MAX_HASHES: usize = 4;
/// How long a sign-in waits for a hashing slot before it is told to try again.
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a bounded hash did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// All hashing threads are taken.
    #[error("the server is busy checking other passwords; try again in a moment")]
    Busy,
    /// The hash failed.
    #[error("{0}")]
    Failed(String),
}

type HashJob = Box<dyn FnOnce() + Send>;

/// [`MAX_HASHES`] threads that do nothing but hash. Always the same threads, not the runtime's
/// blocking pool: the allocator keeps a freed 19 MiB buffer in the arena of the thread that
/// used it, so hashes spread over many threads would keep that much per thread.
fn hashers() -> &'static std::sync::mpsc::SyncSender<HashJob> {
    static POOL: std::sync::OnceLock<std::sync::mpsc::SyncSender<HashJob>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<HashJob>(MAX_HASHES * 64);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..MAX_HASHES {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
        }
        tx
    })
}

static WAITING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_HASHES);

/// Runs an argon2 job (`hash_password`, `verify_password`) on the hashing threads, at most
/// [`MAX_HASHES`] at once; a caller that waits longer than 10 s for a slot gets `Busy`.
pub async fn bounded_hash<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    let permit = tokio::time::timeout(HASH_WAIT, WAITING.acquire())
        .await
        .map_err(|_| HashError::Busy)?
        .map_err(|_| HashError::Busy)?;
    let (done, result) = tokio::sync::oneshot::channel();
    hashers()
        .try_send(Box::new(move || {
            // Held until the hash ends, not until the caller leaves: a caller that hangs up
            // does not free a slot its hash still occupies.
            let _permit = permit;
            let _ = done.send(job());
        }))
        .map_err(|_| HashError::Busy)?;
    result
        .await
        .map_err(|_| HashError::Failed("the hashing thread stopped".into()))
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
