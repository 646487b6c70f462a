//! The journal's own SQLite connection, used from the journal's own thread.
//!
//! Through the pool, a batch is a command to the connection's worker thread and an answer
//! streamed back per statement, each a wake-up of the task reading it: at a few thousand runs
//! a second most of the cost was threads waking each other, not SQLite. A connection that
//! the writing thread owns runs the same script with no hand-off at all.

use std::path::Path;
use std::time::Duration;

use super::runs::sqlite_script;
use super::{Op, StoreError};

/// A connection to a SQLite file for one thread's writes.
pub struct DirectWriter {
    conn: rusqlite::Connection,
}

impl DirectWriter {
    /// Opens `path` as the pool's connections are (WAL, `synchronous = NORMAL`, the same busy
    /// timeout and foreign keys): the file exists and is migrated by then.
    pub fn open(path: &Path) -> Result<DirectWriter, StoreError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )?;
        Ok(DirectWriter { conn })
    }

    /// [`super::Store::apply`] on this connection: all or none, in order.
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        for chunk in sqlite_script(ops) {
            if let Err(e) = self.conn.execute_batch(&chunk) {
                // A statement failed mid-script: its transaction is still open.
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                return Err(e.into());
            }
        }
        Ok(())
    }
}
