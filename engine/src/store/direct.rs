//! The journal's own SQLite connection, used from the journal's own thread.
//!
//! Through the pool, a batch is a command to the connection's worker thread and an answer
//! streamed back per statement, each a wake-up of the task reading it: at a few thousand runs
//! a second most of the cost was threads waking each other, not SQLite. A connection that
//! the writing thread owns runs the same script with no hand-off at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::runs::sqlite_script;
use super::{Op, StoreError};

/// A connection to a SQLite file for one thread's writes.
pub struct DirectWriter {
    conn: rusqlite::Connection,
    path: PathBuf,
}

impl DirectWriter {
    /// Opens `path` (see [`connect`]).
    pub fn open(path: &Path) -> Result<DirectWriter, StoreError> {
        Ok(DirectWriter {
            conn: connect(path)?,
            path: path.to_path_buf(),
        })
    }

    /// [`super::Store::apply`] on this connection: all or none, in order.
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        for chunk in sqlite_script(ops) {
            if let Err(e) = self.conn.execute_batch(&chunk) {
                // A statement failed mid-script: its transaction is still open. A connection
                // that cannot end it is replaced, or every later `BEGIN` would fail.
                let ended =
                    self.conn.is_autocommit() || self.conn.execute_batch("ROLLBACK").is_ok();
                if !ended {
                    match connect(&self.path) {
                        Ok(conn) => self.conn = conn,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot reopen the journal's SQLite connection")
                        }
                    }
                }
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// Opens `path` as the pool's connections are (WAL, `synchronous = NORMAL`, the same busy
/// timeout and foreign keys): the file exists and is migrated by then.
fn connect(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    Ok(conn)
}
