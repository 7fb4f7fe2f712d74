//! Where the sequence lives between runs: `fib.redb`, an embedded ACID database (redb) in
//! the server's data directory, marked with the program and format version that wrote it.
//!
//! - An absent or empty directory gets a new database, built under a temporary name and
//!   renamed into place once complete, so a crash while creating it leaves nothing half made.
//! - [`Store::save`] commits durably (redb's `Durability::Immediate`: one fsync) before it
//!   returns: whatever it saved survives `kill -9` and power loss.
//! - Anything else (a directory of another program's files, a file that is not a redb
//!   database, a redb database of another program or format version, saved numbers that do
//!   not make sense) is a [`StoreError`] naming the path and what to do; the store never
//!   starts from zero on its own.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use num_bigint::BigUint;
use redb::{Database, DatabaseError, ReadableDatabase, TableDefinition, TableError};

use super::sequence::Sequence;

/// The database's file name in the data directory.
pub const DB_FILE: &str = "fib.redb";
/// What the format marker names as the program that writes the database.
pub const PROGRAM: &str = "pbrs fib-server";
/// The version of the layout below; another one is refused, never guessed at.
pub const FORMAT_VERSION: u32 = 1;

/// The name a new database is built under before it is renamed to [`DB_FILE`].
const NEW_DB_FILE: &str = "fib.redb.new";
/// The format marker: `program` → [`PROGRAM`], `version` → [`FORMAT_VERSION`] in decimal.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// The sequence: `index` (8 bytes, little-endian), `current` and `next` (little-endian bytes).
const SEQUENCE: TableDefinition<&str, &[u8]> = TableDefinition::new("sequence");

/// Why the store cannot be opened or written; each says where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be made or read.
    #[error("cannot use the data directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The directory holds files, but no `fib.redb`.
    #[error(
        "{path} holds other files but no {DB_FILE}: it looks like another program's data \
         directory, so fib-server leaves it alone. Give an empty or new directory to start a \
         new sequence, or the one holding fib-server's {DB_FILE} to go on with it"
    )]
    ForeignDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// Another process has the database open.
    #[error(
        "{path} is in use by another process (another fib-server?): stop it first, or give \
         another data directory"
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The file is not a redb database, or it is damaged.
    #[error(
        "cannot read {path}: {reason}. It is not a redb database, or it is damaged. \
         fib-server will not start from zero on its own (it would hand out numbers again): \
         restore the file from a backup, or move it away to start a new sequence"
    )]
    Unreadable {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        reason: String,
    },
    /// A redb database, but not one fib-server wrote.
    #[error(
        "{path} is a redb database but not fib-server's: {reason}. fib-server leaves it \
         alone: give another data directory"
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// fib-server's database, in another format version.
    #[error(
        "{path} holds fib-server data in format version {found}, and this fib-server reads \
         version {FORMAT_VERSION} only: run the fib-server that wrote it, or give another data \
         directory"
    )]
    Version {
        /// The database file.
        path: PathBuf,
        /// The version it was written in.
        found: String,
    },
    /// fib-server's database, whose saved sequence makes no sense.
    #[error(
        "{path} is damaged: {what}. fib-server will not guess where the sequence stands: \
         restore the file from a backup, or move it away to start a new sequence"
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Saving failed: nothing more may be handed out.
    #[error(
        "cannot save the sequence to {path}: {reason}. fib-server stops rather than hand out \
         numbers it could not record; check the disk, then start it again"
    )]
    Save {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        reason: String,
    },
}

/// The open database of one data directory. Only one process may have it open.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens the store in `dir` (created if absent) and reads where the sequence stands; an
    /// absent or empty directory starts the sequence anew.
    ///
    /// # Errors
    /// See [`StoreError`]: anything but fib-server's own, readable database.
    pub fn open(dir: &Path) -> Result<(Store, Sequence), StoreError> {
        let directory = |source| StoreError::Directory {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(directory)?;
        let path = dir.join(DB_FILE);
        if !path.try_exists().map_err(directory)? {
            create(dir, &path)?;
        }
        let db = Database::open(&path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: path.clone() },
            other => StoreError::Unreadable {
                path: path.clone(),
                reason: other.to_string(),
            },
        })?;
        let sequence = read(&db, &path)?;
        Ok((Store { db, path }, sequence))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves `sequence` in one durable transaction: once this returns `Ok`, the saved state
    /// survives a crash or a power loss.
    ///
    /// # Errors
    /// [`StoreError::Save`]: the state may or may not have been saved.
    pub fn save(&self, sequence: &Sequence) -> Result<(), StoreError> {
        let failed = |e: redb::Error| StoreError::Save {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        write(&self.db, None, sequence).map_err(failed)
    }
}

/// Makes a new database at `path`, unless `dir` holds other files: built under a temporary
/// name, then renamed into place.
fn create(dir: &Path, path: &Path) -> Result<(), StoreError> {
    let directory = |source| StoreError::Directory {
        path: dir.to_owned(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(directory)? {
        if entry.map_err(directory)?.file_name() != NEW_DB_FILE {
            return Err(StoreError::ForeignDirectory {
                path: dir.to_owned(),
            });
        }
    }
    let new = dir.join(NEW_DB_FILE);
    if new.try_exists().map_err(directory)? {
        fs::remove_file(&new).map_err(directory)?;
    }
    let cannot_create = |e: redb::Error| StoreError::Save {
        path: new.clone(),
        reason: e.to_string(),
    };
    let db = Database::create(&new).map_err(|e| cannot_create(e.into()))?;
    write(&db, Some(FORMAT_VERSION), &Sequence::new()).map_err(cannot_create)?;
    drop(db);
    fs::rename(&new, path).map_err(directory)?;
    // The rename must survive a crash too, and so must the directory if it is new.
    sync_directory(dir).map_err(directory)?;
    match dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        Some(parent) => sync_directory(parent).map_err(directory),
        None => Ok(()),
    }
}

/// Makes the entries of directory `dir` durable (on Unix; elsewhere a directory cannot be
/// opened for that, and the system's own journal has to do).
fn sync_directory(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes `sequence` (and the format marker of `version`, when given) in one transaction.
fn write(db: &Database, version: Option<u32>, sequence: &Sequence) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    if let Some(version) = version {
        let mut meta = txn.open_table(META)?;
        meta.insert("program", PROGRAM)?;
        meta.insert("version", version.to_string().as_str())?;
    }
    {
        let mut table = txn.open_table(SEQUENCE)?;
        table.insert("index", sequence.index().to_le_bytes().as_slice())?;
        table.insert("current", sequence.current().to_bytes_le().as_slice())?;
        table.insert("next", sequence.next_after().to_bytes_le().as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// Checks the format marker, then reads the sequence.
fn read(db: &Database, path: &Path) -> Result<Sequence, StoreError> {
    let unreadable = |e: redb::Error| StoreError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let foreign = |reason: &str| StoreError::Foreign {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let damaged = |what: &str| StoreError::Damaged {
        path: path.to_owned(),
        what: what.to_owned(),
    };
    let txn = db.begin_read().map_err(|e| unreadable(e.into()))?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(TableError::Storage(e)) => return Err(unreadable(e.into())),
        Err(_) => return Err(foreign("it has no fib-server format marker")),
    };
    let marker = |key| {
        meta.get(key)
            .map(|value| value.map(|v| v.value().to_owned()))
            .map_err(|e| unreadable(e.into()))
    };
    match marker("program")? {
        Some(program) if program == PROGRAM => {}
        Some(program) => return Err(foreign(&format!("its format marker names {program:?}"))),
        None => return Err(foreign("its format marker names no program")),
    }
    let version = marker("version")?.unwrap_or_default();
    if version != FORMAT_VERSION.to_string() {
        return Err(StoreError::Version {
            path: path.to_owned(),
            found: format!("{version:?}"),
        });
    }
    let table = txn
        .open_table(SEQUENCE)
        .map_err(|_| damaged("the saved sequence is missing"))?;
    let field = |key| match table.get(key) {
        Ok(Some(value)) => Ok(value.value().to_vec()),
        Ok(None) => Err(damaged(&format!("the saved sequence has no {key:?}"))),
        Err(e) => Err(unreadable(e.into())),
    };
    let index = <[u8; 8]>::try_from(field("index")?.as_slice())
        .map_err(|_| damaged("the saved index is not 8 bytes long"))?;
    let current = BigUint::from_bytes_le(&field("current")?);
    let next = BigUint::from_bytes_le(&field("next")?);
    Sequence::from_parts(u64::from_le_bytes(index), current, next)
        .ok_or_else(|| damaged("the saved numbers are not consecutive Fibonacci numbers"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_saved_is_read_back_and_nothing_is_left_over() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (store, fresh) = Store::open(&data).unwrap();
        assert_eq!(fresh, Sequence::new());
        let mut sequence = fresh;
        sequence.nth(300);
        store.save(&sequence).unwrap();
        drop(store);
        let (_store, again) = Store::open(&data).unwrap();
        assert_eq!(again, sequence);
        let files: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [DB_FILE]);
    }

    #[test]
    fn a_leftover_half_made_database_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NEW_DB_FILE), b"killed while creating").unwrap();
        let (_store, sequence) = Store::open(dir.path()).unwrap();
        assert_eq!(sequence, Sequence::new());
    }
}
