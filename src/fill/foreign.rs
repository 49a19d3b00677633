//! Following another process's fill: the bytes it writes into the shared
//! `incomplete/<id>` are published to this process's followers as if a
//! fill of its own were writing them, and its commit (or failure) ends the
//! fill here too.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Failure, Fill, FillRegistry, Phase};
use crate::store::{CacheStore, ForeignFill};

/// How often the other process's file is looked at.
const POLL: Duration = Duration::from_millis(20);

/// How long the other process's file may stay the same size before its
/// fill is given up here (followers then continue from the upstream).
const STALL: Duration = Duration::from_secs(60);

/// Spawns the task that follows another process's fill of `size` bytes in
/// `file` for `fill` (already started, its head and `file` published), and
/// unregisters `fill` from `fills` once the other process committed or
/// gave up.
pub(crate) fn spawn_foreign_follow(
    fill: Arc<Fill>,
    file: Arc<File>,
    size: u64,
    store: CacheStore,
    fills: Arc<FillRegistry>,
) {
    tokio::spawn(async move {
        let phase = watch(&fill, &file, size, &store).await;
        let committed = matches!(phase, Phase::Verified);
        if let Phase::Failed(why) = &phase {
            tracing::info!(image_id = %fill.id, %why,
                "another process's fill ended without a commit");
        }
        fill.finish(phase);
        fills.remove(&fill);
        if committed {
            fills.notify_commit();
        }
    });
}

async fn watch(fill: &Fill, file: &Arc<File>, size: u64, store: &CacheStore) -> Phase {
    // Followers go on from the upstream, verifying what they sent.
    let gave_up = |why: String| Phase::Failed(Failure::Source(Arc::new(why.into())));
    // The file no longer shows what followers read: they stop.
    let unusable = |why: String| Phase::Failed(Failure::Foreign(Arc::new(why.into())));
    let (mut last, mut since) = (0, Instant::now());
    loop {
        match store.foreign_fill_state(&fill.id, file).await {
            Err(e) => return gave_up(format!("the other process's fill: {e}")),
            Ok(ForeignFill::Writing(len)) => {
                if len > size {
                    return unusable(format!(
                        "the other process wrote {len} bytes of a {size}-byte image"
                    ));
                }
                if len < last {
                    return unusable(format!(
                        "the file shrank from {last} to {len} bytes: a new fill took it over"
                    ));
                }
                if len != last {
                    fill.set_written(len);
                    (last, since) = (len, Instant::now());
                } else if since.elapsed() > STALL {
                    return gave_up(format!(
                        "the other process's fill made no progress for {STALL:?}"
                    ));
                }
            }
            Ok(ForeignFill::Committed(len)) if len == size => {
                fill.set_written(len);
                return Phase::Verified;
            }
            Ok(ForeignFill::Committed(len)) => {
                return unusable(format!(
                    "the other process committed {len} bytes, not {size}"
                ))
            }
            Ok(ForeignFill::Ended) => {
                return gave_up("the other process's fill ended without a commit".to_owned())
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
