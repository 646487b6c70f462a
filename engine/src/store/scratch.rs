//! Scratch PostgreSQL databases for tests and benchmarks: created, reached and dropped by
//! name on a server the caller administers. Not part of what the server itself does.

use super::{Store, StoreError};

/// The PostgreSQL server tests use: `FLOWSCOPE_TEST_POSTGRES_URL`, or the local one.
pub fn admin_url() -> String {
    std::env::var("FLOWSCOPE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database `name` (a plain identifier) on the PostgreSQL server of
/// `admin_url`, replacing any of that name, and connects to it.
pub async fn create_database(admin_url: &str, name: &str) -> Result<Store, StoreError> {
    drop_database(admin_url, name).await?;
    let admin = Store::connect(admin_url).await?;
    admin
        .execute_raw(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await;
    Store::connect(&database_url(admin_url, name)).await
}

/// The URL of database `name` on the PostgreSQL server of `admin_url`.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    format!("{base}/{name}")
}

/// Drops database `name` (a plain identifier) on the server of `admin_url`, if it exists.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::BadUrl {
            url: name.to_string(),
            reason: "a database name is letters, digits and _".into(),
        });
    }
    let admin = Store::connect(admin_url).await?;
    let result = admin
        .execute_raw(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    admin.close().await;
    result
}

/// Runs one administrative statement given as text (never user input) on `store`.
pub async fn execute(store: &Store, sql: &str) -> Result<(), StoreError> {
    store.execute_raw(sql).await
}
