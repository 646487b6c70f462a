-- Sign-in, API tokens and encrypted secrets (see server/src/auth.rs and engine/src/vault.rs).

-- Who started a run, when a person or token did: `alice`, `token:ci`.
ALTER TABLE runs ADD COLUMN actor TEXT;

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,                -- argon2id PHC string
    role          TEXT NOT NULL,                -- viewer|operator|editor|admin
    created_at    BIGINT NOT NULL
);

-- A signed-in browser. Only the SHA-256 of the cookie's value is stored.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- API tokens: shown once at creation; only their SHA-256 is stored.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

-- Secrets, sealed with XChaCha20-Poly1305 under the server's key; the name is bound in as
-- associated data, so a value moved to another name does not open.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    nonce      TEXT NOT NULL,                   -- hex
    ciphertext TEXT NOT NULL,                   -- hex
    updated_at BIGINT NOT NULL,
    updated_by TEXT
);
