//! Users, sessions, API tokens and sealed secrets. Passwords arrive hashed (argon2, in the
//! server) and tokens as their SHA-256: nothing here can be replayed from a database dump.

use super::{on_pool, Store, StoreError};
use crate::access::{Role, TokenInfo, UserInfo};

/// A user with the password hash, for sign-in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Its id.
    pub id: i64,
    /// Its sign-in name.
    pub name: String,
    /// Its argon2id hash (PHC string).
    pub password_hash: String,
    /// Its role's name.
    pub role: String,
}

/// A secret as stored: sealed, hex-encoded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedSecret {
    /// Its name.
    pub name: String,
    /// The nonce it was sealed with (hex).
    pub nonce: String,
    /// The sealed value (hex).
    pub ciphertext: String,
    /// When it was last set (unix ms).
    pub updated_at: i64,
    /// Who last set it.
    pub updated_by: Option<String>,
}

fn role(stored: &str) -> Result<Role, StoreError> {
    Role::parse(stored).ok_or_else(|| StoreError::Corrupt(format!("unknown role \"{stored}\"")))
}

/// Refused because it would leave no admin to manage users, tokens and secrets.
fn last_admin() -> StoreError {
    StoreError::Refused("this is the last admin: make another user admin first".into())
}

/// `(id, name, role, last_used_at)` of an API token.
pub type TokenHolder = (i64, String, Role, Option<i64>);

impl Store {
    /// How many users there are (none: the set-up page is open).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT users", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "users"))]
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(pool).await?
        }))
    }

    /// Creates a user; a taken name is [`StoreError::Refused`].
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT users", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "users"))]
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
        now: i64,
    ) -> Result<i64, StoreError> {
        let created = on_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO users (name, password_hash, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(name.to_string())
            .bind(password_hash.to_string())
            .bind(role.as_str())
            .bind(now)
            .fetch_one(pool)
            .await
        });
        created.map_err(|e| {
            let e = StoreError::from(e);
            if e.is_unique_violation() {
                StoreError::Refused(format!("user \"{name}\" already exists"))
            } else {
                e
            }
        })
    }

    /// Creates the first user, an admin, only while there is no user at all (first-run
    /// set-up); `false` when someone was first.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT users", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "users"))]
    pub async fn create_first_admin(
        &self,
        name: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO users (name, password_hash, role, created_at)
                 SELECT $1, $2, 'admin', $3 WHERE NOT EXISTS (SELECT 1 FROM users)",
            )
            .bind(name.to_string())
            .bind(password_hash.to_string())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }

    /// The user with this sign-in name.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT users", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "users"))]
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, password_hash, role FROM users WHERE name = $1")
                .bind(name.to_string())
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every user, by name.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT users", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "users"))]
    pub async fn users(&self) -> Result<Vec<UserInfo>, StoreError> {
        let rows: Vec<(i64, String, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, role, created_at FROM users ORDER BY name")
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(id, name, r, created_at)| {
                Ok(UserInfo {
                    id,
                    name,
                    role: role(&r)?,
                    created_at,
                })
            })
            .collect()
    }

    /// Changes a user's role; the last admin cannot be demoted.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE users", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "users"))]
    pub async fn set_user_role(&self, id: i64, new: Role) -> Result<(), StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE users SET role = $1 WHERE id = $2
                 AND ($1 = 'admin' OR role <> 'admin' OR (SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)",
            )
            .bind(new.as_str())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 1 {
            return Ok(());
        }
        self.user_exists(id).await?;
        Err(last_admin())
    }

    /// Sets a new password and signs the user out everywhere.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE users", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "users"))]
    pub async fn set_user_password(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        let changed = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash.to_string())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            n
        });
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Refused(format!("no user with id {id}")))
        }
    }

    /// Deletes a user (and so their sessions); the last admin cannot be deleted.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE users", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "users"))]
    pub async fn delete_user(&self, id: i64) -> Result<(), StoreError> {
        let deleted = on_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM users WHERE id = $1
                 AND (role <> 'admin' OR (SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)",
            )
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if deleted == 1 {
            return Ok(());
        }
        self.user_exists(id).await?;
        Err(last_admin())
    }

    async fn user_exists(&self, id: i64) -> Result<(), StoreError> {
        let found: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM users WHERE id = $1").bind(id).fetch_optional(pool).await?
        });
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::Refused(format!("no user with id {id}"))),
        }
    }

    /// Stores a session (the SHA-256 of its cookie) for a user.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT sessions", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "sessions"))]
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(token_hash.to_string())
                .bind(user_id)
                .bind(now)
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The user name and role behind a live session, and when it was last used: a session
    /// lives until `expires_at` and while it was used after `idle_since`.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT sessions", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "sessions"))]
    pub async fn session_user(
        &self,
        token_hash: &str,
        now: i64,
        idle_since: i64,
    ) -> Result<Option<(String, Role, i64)>, StoreError> {
        let row: Option<(String, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT u.name, u.role, COALESCE(s.seen_at, s.created_at)
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2
                   AND COALESCE(s.seen_at, s.created_at) > $3",
            )
            .bind(token_hash.to_string())
            .bind(now)
            .bind(idle_since)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(name, r, seen)| Ok((name, role(&r)?, seen)))
            .transpose()
    }

    /// Records that a session was used at `now` (keeps it from idling out).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE sessions", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "sessions"))]
    pub async fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE sessions SET seen_at = $2 WHERE token_hash = $1")
                .bind(token_hash.to_string())
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Ends a session (sign-out).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE sessions", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "sessions"))]
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1 OR expires_at < $2")
                .bind(token_hash.to_string())
                .bind(super::now_ms())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Stores an API token (the SHA-256 of its value); returns its id.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT api_tokens", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "api_tokens"))]
    pub async fn create_token(
        &self,
        name: &str,
        token_hash: &str,
        role: Role,
        created_by: Option<&str>,
        now: i64,
    ) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO api_tokens (name, token_hash, role, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name.to_string())
            .bind(token_hash.to_string())
            .bind(role.as_str())
            .bind(created_by.map(str::to_string))
            .bind(now)
            .fetch_one(pool)
            .await?
        }))
    }

    /// `(id, name, role, last_used_at)` of a token that is not revoked.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT api_tokens", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "api_tokens"))]
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenHolder>, StoreError> {
        let row: Option<(i64, String, String, Option<i64>)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, name, role, last_used_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash.to_string())
            .fetch_optional(pool)
            .await?
        });
        row.map(|(id, name, r, used)| Ok((id, name, role(&r)?, used)))
            .transpose()
    }

    /// Records that a token was used now.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE api_tokens", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "api_tokens"))]
    pub async fn touch_token(&self, id: i64, now: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Every token, newest first.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT api_tokens", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "api_tokens"))]
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            Option<String>,
            i64,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, name, role, created_by, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id DESC",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(
                |(id, name, r, created_by, created_at, last_used_at, revoked_at)| {
                    Ok(TokenInfo {
                        id,
                        name,
                        role: role(&r)?,
                        created_by,
                        created_at,
                        last_used_at,
                        revoked_at,
                    })
                },
            )
            .collect()
    }

    /// Revokes a token at once; `false` when there is no such live token.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE api_tokens", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "api_tokens"))]
    pub async fn revoke_token(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Stores (or replaces) a sealed secret.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT secrets", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "secrets"))]
    pub async fn put_secret(
        &self,
        name: &str,
        nonce: &str,
        ciphertext: &str,
        now: i64,
        updated_by: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO secrets (name, nonce, ciphertext, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext,
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(name.to_string())
            .bind(nonce.to_string())
            .bind(ciphertext.to_string())
            .bind(now)
            .bind(updated_by.map(str::to_string))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Every stored secret, still sealed.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT secrets", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "secrets"))]
    pub async fn sealed_secrets(&self) -> Result<Vec<SealedSecret>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT name, nonce, ciphertext, updated_at, updated_by FROM secrets ORDER BY name")
                .fetch_all(pool)
                .await?
        }))
    }

    /// `false` when there was no such secret.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE secrets", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "secrets"))]
    pub async fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("DELETE FROM secrets WHERE name = $1")
                .bind(name.to_string())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }
}
