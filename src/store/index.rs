//! The SQLite index of cached images, owned by one dedicated thread.
//!
//! The table is Glance's own `cached_images` (sqlite driver), so a
//! cache directory written by Glance is adopted as it is; our extra column
//! (`verified`) is added in place when missing. All statements run on the
//! index thread: callers send a closure and await its answer, so no async
//! worker ever blocks on SQLite (architecture invariant 4).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::stamp::FileStamp;
use crate::checksum::Multihash;
use crate::{Error, ImageId};

/// One row of the index: a committed, complete image file.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// The image id (also the file name).
    pub image_id: ImageId,
    /// Completed hits served from the cache.
    pub hits: u64,
    /// Epoch seconds of the last completed hit (commit time at insert).
    pub last_accessed: f64,
    /// Epoch seconds of the commit.
    pub last_modified: f64,
    /// Size of the file in bytes.
    pub size: u64,
    /// Lower-case hex MD5 of the image bytes, when known.
    pub checksum: Option<String>,
    /// Whether the bytes were verified against an upstream checksum at fill time.
    pub verified: bool,
    /// The image's multihash (Glance's `os_hash_algo`/`os_hash_value`), when
    /// the bytes were checked against it.
    pub multihash: Option<Multihash>,
    /// Epoch seconds of the last time the file was hashed and matched the
    /// recorded digests (at its commit, by the scrubber, `verify` or a hit
    /// that re-verified it); `None` for an entry never hashed (adopted).
    pub verified_at: Option<f64>,
    /// The file's identity when it was last verified: a file whose inode,
    /// size, mtime or ctime differ since may have changed.
    pub(crate) stamp: Option<FileStamp>,
}

impl CacheEntry {
    /// The image's MD5 as the upstream announced it, as far as the entry
    /// knows: its checksum when its bytes were checked against the
    /// upstream's; `None` for bytes cached without one (Glance then sends
    /// no `Content-MD5` either) or never checked. What a hit sends as
    /// `Content-MD5` when the upstream was not asked.
    pub(crate) fn upstream_checksum(&self) -> Option<String> {
        self.checksum.clone().filter(|_| self.verified)
    }
}

/// The digests and file identity recorded for a verified file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verified {
    /// Lower-case hex MD5.
    pub(crate) md5: String,
    pub(crate) multihash: Option<Multihash>,
    pub(crate) stamp: Option<FileStamp>,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the index thread. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Index {
    tx: mpsc::Sender<Job>,
    path: PathBuf,
}

/// The columns this crate adds to Glance's table (added in place when missing).
const EXTRA_COLUMNS: [(&str, &str); 7] = [
    ("verified", "INTEGER DEFAULT 0"),
    ("os_hash_algo", "TEXT"),
    ("os_hash_value", "TEXT"),
    ("file_ino", "INTEGER"),
    ("file_mtime_ns", "INTEGER"),
    ("file_ctime_ns", "INTEGER"),
    ("verified_at", "REAL"),
];

/// Every column a row is read with, in [`row_to_entry`]'s order.
const COLUMNS: &str = "image_id, hits, last_accessed, last_modified, size, checksum, verified, \
     os_hash_algo, os_hash_value, file_ino, file_mtime_ns, file_ctime_ns, verified_at";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS cached_images (
    image_id TEXT PRIMARY KEY,
    last_accessed REAL DEFAULT 0.0,
    last_modified REAL DEFAULT 0.0,
    size INTEGER DEFAULT 0,
    hits INTEGER DEFAULT 0,
    checksum TEXT
)";

pub(crate) fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

impl Index {
    /// Opens (creating if needed) the database and starts the index thread.
    /// Blocking: call it from a blocking context or at startup.
    pub(crate) fn open(path: &Path) -> Result<Index, Error> {
        let err = |source| Error::Index {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        // WAL lets the proxy and the maintenance commands share the file.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;")
            .map_err(err)?;
        migrate(&mut conn).map_err(err)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("cache-index".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| Error::io("spawn index thread for", path, e))?;
        Ok(Index {
            tx,
            path: path.to_owned(),
        })
    }

    /// Runs `f` on the index thread and returns its result.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.tx.send(job).map_err(|_| Error::IndexGone)?;
        match answer.await {
            Ok(result) => result.map_err(|source| Error::Index {
                path: self.path.clone(),
                source,
            }),
            Err(_) => Err(Error::IndexGone),
        }
    }

    pub(crate) async fn get(&self, id: &ImageId) -> Result<Option<CacheEntry>, Error> {
        let id = id.clone();
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM cached_images WHERE image_id = ?1"),
                [id.as_str()],
                row_to_entry,
            )
            .optional()
            .map(Option::flatten)
        })
        .await
    }

    /// Adopts a cached file that has no row (a Glance cache directory, a
    /// lost index): a row with its size, no digests, not verified. A row
    /// that is already there wins: a fill that committed between the
    /// caller's lookup and this insert keeps its digests. Returns whether
    /// the row was added.
    pub(crate) async fn adopt(&self, id: &ImageId, size: u64, at: f64) -> Result<bool, Error> {
        let id = id.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO cached_images
                   (image_id, last_accessed, last_modified, size, hits, checksum, verified)
                 VALUES (?1, ?2, ?2, ?3, 0, NULL, 0)
                 ON CONFLICT(image_id) DO NOTHING",
                params![id.as_str(), at, size as i64],
            )
            .map(|added| added == 1)
        })
        .await
    }

    /// Records a fresh commit: size, digests, the file's identity, and that
    /// it was verified now. An existing row keeps its hits and timestamps
    /// (a re-download keeps the old row).
    pub(crate) async fn insert_commit(
        &self,
        id: &ImageId,
        size: u64,
        verified_upstream: bool,
        digests: Verified,
        at: f64,
    ) -> Result<(), Error> {
        let id = id.clone();
        self.call(move |c| {
            let (algo, value) = multihash_columns(&digests.multihash);
            let (ino, mtime, ctime) = stamp_columns(&digests.stamp);
            c.execute(
                "INSERT INTO cached_images
                   (image_id, last_accessed, last_modified, size, hits, checksum, verified,
                    os_hash_algo, os_hash_value, file_ino, file_mtime_ns, file_ctime_ns,
                    verified_at)
                 VALUES (?1, ?2, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?2)
                 ON CONFLICT(image_id) DO UPDATE SET size = excluded.size,
                   checksum = excluded.checksum, verified = excluded.verified,
                   os_hash_algo = excluded.os_hash_algo, os_hash_value = excluded.os_hash_value,
                   file_ino = excluded.file_ino, file_mtime_ns = excluded.file_mtime_ns,
                   file_ctime_ns = excluded.file_ctime_ns, verified_at = excluded.verified_at",
                params![
                    id.as_str(),
                    at,
                    size as i64,
                    digests.md5,
                    verified_upstream as i64,
                    algo,
                    value,
                    ino,
                    mtime,
                    ctime
                ],
            )
            .map(|_| ())
        })
        .await
    }

    /// Records that the file of `id` was hashed at `at` and matched: its
    /// identity now, and the digests (an adopted entry gets its first
    /// ones; `verified` is set when they were checked against the
    /// upstream's). Only a row that still describes the file that was
    /// hashed is updated: its recorded identity must still be `previous`
    /// (a file committed anew meanwhile keeps its own row). Returns whether
    /// a row was updated.
    pub(crate) async fn record_verified(
        &self,
        id: &ImageId,
        previous: Option<FileStamp>,
        digests: Verified,
        verified_upstream: bool,
        at: f64,
    ) -> Result<bool, Error> {
        let id = id.clone();
        self.call(move |c| {
            let (algo, value) = multihash_columns(&digests.multihash);
            let (ino, mtime, ctime) = stamp_columns(&digests.stamp);
            let (was_ino, _, was_ctime) = stamp_columns(&previous);
            c.execute(
                "UPDATE cached_images SET checksum = ?2,
                   os_hash_algo = COALESCE(?3, os_hash_algo),
                   os_hash_value = CASE WHEN ?3 IS NULL THEN os_hash_value ELSE ?4 END,
                   file_ino = ?5, file_mtime_ns = ?6, file_ctime_ns = ?7, verified_at = ?8,
                   verified = MAX(COALESCE(verified, 0), ?9)
                 WHERE image_id = ?1 AND file_ino IS ?10 AND file_ctime_ns IS ?11",
                params![
                    id.as_str(),
                    digests.md5,
                    algo,
                    value,
                    ino,
                    mtime,
                    ctime,
                    at,
                    verified_upstream as i64,
                    was_ino,
                    was_ctime
                ],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// Every row, least recently verified first (never verified first,
    /// then oldest `verified_at`; ties by id): the scrubber's order.
    pub(crate) async fn by_verification_age(&self) -> Result<Vec<CacheEntry>, Error> {
        self.rows("verified_at IS NOT NULL, verified_at, image_id")
            .await
    }

    /// Records one completed download from the cache: a full hit counts
    /// in `hits` (as Glance counts), a range only moves `last_accessed`
    /// (Glance serves ranges from its backend and never counts them; the
    /// entry was used all the same, so pruning keeps it).
    ///
    /// Queued without waiting for the answer (a failure is logged): every
    /// later statement, a listing included, sees it.
    pub(crate) fn record_access(&self, id: &ImageId, whole: bool) {
        let id = id.clone();
        let at = now_epoch();
        let path = self.path.clone();
        let job: Job = Box::new(move |c| {
            if let Err(e) = c.execute(
                "UPDATE cached_images SET hits = hits + ?3, last_accessed = ?2 WHERE image_id = ?1",
                params![id.as_str(), at, whole as i64],
            ) {
                tracing::warn!(image_id = %id, index = %path.display(), error = %e, "could not count hit");
            }
        });
        if self.tx.send(job).is_err() {
            tracing::debug!("hit not counted: the index thread has stopped");
        }
    }

    /// Drops the row of `id` if it is still the row that was read before
    /// its file (inode `ino`) was quarantined: its recorded identity is
    /// still `previous`, or it records no identity, or it records that
    /// file's inode. A row written by a commit since (another file, open
    /// elsewhere, another inode) stays. Returns whether a row was dropped.
    pub(crate) async fn delete_if_still(
        &self,
        id: &ImageId,
        previous: Option<FileStamp>,
        ino: u64,
    ) -> Result<bool, Error> {
        let id = id.clone();
        self.call(move |c| {
            let (was_ino, _, was_ctime) = stamp_columns(&previous);
            c.execute(
                "DELETE FROM cached_images WHERE image_id = ?1
                   AND (file_ino IS NULL OR file_ino = ?2
                        OR (file_ino IS ?3 AND file_ctime_ns IS ?4))",
                params![id.as_str(), ino as i64, was_ino, was_ctime],
            )
            .map(|n| n > 0)
        })
        .await
    }

    pub(crate) async fn delete(&self, id: &ImageId) -> Result<bool, Error> {
        let id = id.clone();
        self.call(move |c| {
            c.execute(
                "DELETE FROM cached_images WHERE image_id = ?1",
                [id.as_str()],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// The id of every row, least recently accessed first (ties by id):
    /// the order [`prune`](super::CacheStore::prune) removes entries in.
    pub(crate) async fn lru(&self) -> Result<Vec<ImageId>, Error> {
        self.call(|c| {
            let mut stmt =
                c.prepare("SELECT image_id FROM cached_images ORDER BY last_accessed, image_id")?;
            let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
            let mut out = Vec::new();
            for raw in rows {
                if let Ok(id) = ImageId::parse(&raw?) {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Deletes the rows of `ids` in one transaction; returns how many existed.
    pub(crate) async fn delete_many(&self, ids: Vec<ImageId>) -> Result<usize, Error> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let mut deleted = 0;
            {
                let mut stmt = tx.prepare("DELETE FROM cached_images WHERE image_id = ?1")?;
                for id in &ids {
                    deleted += stmt.execute([id.as_str()])?;
                }
            }
            tx.commit()?;
            Ok(deleted)
        })
        .await
    }

    /// Every row, ordered by image id (Glance's sqlite order).
    pub(crate) async fn list(&self) -> Result<Vec<CacheEntry>, Error> {
        self.rows("image_id").await
    }

    /// Every row (those with an invalid id left out), in `order`.
    async fn rows(&self, order: &'static str) -> Result<Vec<CacheEntry>, Error> {
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM cached_images ORDER BY {order}"
            ))?;
            let rows = stmt.query_map([], row_to_entry)?;
            let mut out = Vec::new();
            for row in rows {
                if let Some(entry) = row? {
                    out.push(entry);
                }
            }
            Ok(out)
        })
        .await
    }
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    for (name, kind) in EXTRA_COLUMNS {
        let present = tx
            .prepare("SELECT 1 FROM pragma_table_info('cached_images') WHERE name = ?1")?
            .exists([name])?;
        if !present {
            tx.execute_batch(&format!(
                "ALTER TABLE cached_images ADD COLUMN {name} {kind}"
            ))?;
        }
    }
    tx.commit()
}

/// Maps a row; rows whose id is not a valid [`ImageId`] (a Glance cache may
/// hold anything) are skipped rather than trusted.
fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<CacheEntry>> {
    let raw: String = row.get(0)?;
    let Ok(image_id) = ImageId::parse(&raw) else {
        return Ok(None);
    };
    let hits: Option<i64> = row.get(1)?;
    let size: Option<i64> = row.get(4)?;
    Ok(Some(CacheEntry {
        image_id,
        hits: hits.unwrap_or(0).max(0) as u64,
        last_accessed: row.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
        last_modified: row.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
        size: size.unwrap_or(0).max(0) as u64,
        checksum: row.get(5)?,
        verified: row.get::<_, Option<i64>>(6)?.unwrap_or(0) != 0,
        multihash: match (
            row.get::<_, Option<String>>(7)?,
            row.get::<_, Option<String>>(8)?,
        ) {
            (Some(algo), Some(value)) => Multihash::from_record(&algo, &value),
            _ => None,
        },
        verified_at: row.get(12)?,
        stamp: match (
            row.get::<_, Option<i64>>(9)?,
            row.get::<_, Option<i64>>(10)?,
            row.get::<_, Option<i64>>(11)?,
        ) {
            (Some(ino), Some(mtime_ns), Some(ctime_ns)) => Some(FileStamp {
                ino: ino as u64,
                size: size.unwrap_or(0).max(0) as u64,
                mtime_ns,
                ctime_ns,
            }),
            _ => None,
        },
    }))
}

fn multihash_columns(m: &Option<Multihash>) -> (Option<&'static str>, Option<String>) {
    match m {
        Some(m) => (Some(m.algorithm.name()), Some(m.value.clone())),
        None => (None, None),
    }
}

fn stamp_columns(s: &Option<FileStamp>) -> (Option<i64>, Option<i64>, Option<i64>) {
    match s {
        Some(s) => (Some(s.ino as i64), Some(s.mtime_ns), Some(s.ctime_ns)),
        None => (None, None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ImageId {
        ImageId::parse(&format!("00000000-0000-0000-0000-0000000000{n:02x}")).unwrap()
    }

    #[tokio::test]
    async fn adopting_a_file_never_overwrites_the_row_of_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("cache.db")).unwrap();
        // A lookup saw the renamed file before the fill's row was written,
        // and its adoption lands after the row.
        let digests = Verified {
            md5: "5d41402abc4b2a76b9719d911017c592".into(),
            multihash: Multihash::from_record("sha512", "ABCD"),
            stamp: stamp(7, 100),
        };
        index
            .insert_commit(&id(1), 9, true, digests.clone(), 10.0)
            .await
            .unwrap();
        assert!(!index.adopt(&id(1), 9, 11.0).await.unwrap());
        let e = index.get(&id(1)).await.unwrap().unwrap();
        assert_eq!(e.checksum.as_deref(), Some(digests.md5.as_str()));
        assert_eq!(
            (e.multihash, e.stamp, e.verified),
            (digests.multihash, digests.stamp, true)
        );
    }

    #[tokio::test]
    async fn insert_hit_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("cache.db")).unwrap();
        let digests = |md5: &str| Verified {
            md5: md5.into(),
            multihash: None,
            stamp: None,
        };
        index
            .insert_commit(&id(2), 9, true, digests("abc"), 100.0)
            .await
            .unwrap();
        assert!(index.adopt(&id(1), 5, 50.0).await.unwrap());
        index.record_access(&id(2), true);
        let e = index.get(&id(2)).await.unwrap().unwrap();
        assert_eq!((e.hits, e.size, e.last_modified), (1, 9, 100.0));
        assert!(e.last_accessed > 100.0);
        assert_eq!(e.checksum.as_deref(), Some("abc"));
        let all = index.list().await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.image_id.clone()).collect::<Vec<_>>(),
            vec![id(1), id(2)]
        );
        // re-commit keeps hits and timestamps
        index
            .insert_commit(&id(2), 10, true, digests("def"), 200.0)
            .await
            .unwrap();
        let e2 = index.get(&id(2)).await.unwrap().unwrap();
        assert_eq!((e2.hits, e2.size, e2.last_modified), (1, 10, 100.0));
        assert_eq!(e2.checksum.as_deref(), Some("def"));
        assert!(index.delete(&id(2)).await.unwrap());
        assert!(index.get(&id(2)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn adopts_glance_sqlite_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute(
                "INSERT INTO cached_images VALUES (?1, 7.5, 7.0, 3, 4, NULL)",
                [id(3).as_str()],
            )
            .unwrap();
            c.execute(
                "INSERT INTO cached_images VALUES ('../etc', 1, 1, 1, 1, NULL)",
                [],
            )
            .unwrap();
        }
        let index = Index::open(&path).unwrap();
        let all = index.list().await.unwrap();
        assert_eq!(all.len(), 1, "rows with invalid ids are skipped");
        assert_eq!((all[0].hits, all[0].size, all[0].verified), (4, 3, false));
        assert_eq!((all[0].verified_at, all[0].stamp), (None, None));
    }

    fn stamp(ino: u64, ctime_ns: i64) -> Option<FileStamp> {
        Some(FileStamp {
            ino,
            size: 9,
            mtime_ns: 1,
            ctime_ns,
        })
    }

    #[tokio::test]
    async fn digests_and_file_identity_are_recorded_and_guarded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        {
            // A table written by the previous version: `verified` only.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA).unwrap();
            c.execute_batch("ALTER TABLE cached_images ADD COLUMN verified INTEGER DEFAULT 0")
                .unwrap();
            c.execute(
                "INSERT INTO cached_images VALUES (?1, 1.0, 1.0, 9, 0, 'aa', 1)",
                [id(1).as_str()],
            )
            .unwrap();
        }
        let index = Index::open(&path).unwrap();
        let old = index.get(&id(1)).await.unwrap().unwrap();
        assert_eq!(old.checksum.as_deref(), Some("aa"));
        assert_eq!(
            (old.multihash.clone(), old.stamp, old.verified_at),
            (None, None, None)
        );

        let sha = Multihash::from_record("sha512", "ABCD");
        let digests = Verified {
            md5: "bb".into(),
            multihash: sha.clone(),
            stamp: stamp(7, 100),
        };
        // Guarded by the identity the row records: none yet.
        assert!(!index
            .record_verified(&id(1), stamp(6, 1), digests.clone(), true, 5.0)
            .await
            .unwrap());
        assert!(index
            .record_verified(&id(1), None, digests.clone(), true, 5.0)
            .await
            .unwrap());
        let e = index.get(&id(1)).await.unwrap().unwrap();
        assert_eq!(e.checksum.as_deref(), Some("bb"));
        assert_eq!(e.multihash, sha);
        assert_eq!(
            (e.stamp, e.verified_at, e.verified),
            (stamp(7, 100), Some(5.0), true)
        );

        index
            .insert_commit(&id(2), 9, false, digests.clone(), 3.0)
            .await
            .unwrap();
        assert!(index.adopt(&id(3), 9, 4.0).await.unwrap());
        let order: Vec<_> = index
            .by_verification_age()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.image_id)
            .collect();
        assert_eq!(
            order,
            vec![id(3), id(2), id(1)],
            "never verified, then oldest"
        );

        // A range moves last_accessed only; a whole download counts a hit.
        index.record_access(&id(2), false);
        let e = index.get(&id(2)).await.unwrap().unwrap();
        assert_eq!(e.hits, 0);
        assert!(e.last_accessed > 3.0);

        assert!(
            !index.delete_if_still(&id(2), stamp(6, 1), 8).await.unwrap(),
            "another file, another row"
        );
        assert!(index.delete_if_still(&id(2), None, 7).await.unwrap());
        assert!(
            index.delete_if_still(&id(3), None, 8).await.unwrap(),
            "no inode recorded"
        );
        // The row read before the file was quarantined, whatever inode
        // the file had (a directory restored with rsync changes them all).
        index
            .insert_commit(&id(4), 9, false, digests.clone(), 3.0)
            .await
            .unwrap();
        assert!(index
            .delete_if_still(&id(4), stamp(7, 100), 8)
            .await
            .unwrap());
    }
}
