//! Running blocking filesystem work off the async worker threads.

use std::io;
use std::path::Path;

use crate::Error;

/// The nice value of background work: the lowest CPU priority, so that it
/// only takes what serving leaves.
pub(super) const BACKGROUND_NICE: i32 = 19;

/// Runs `f` on the blocking pool. A panicked or cancelled task becomes an
/// [`Error::Io`] naming `op` and `path`.
pub(super) async fn blocking<T, F>(op: &'static str, path: &Path, f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::io(op, path, io::Error::other(e)))?
}

/// Runs `f` on a thread of its own at the lowest CPU priority (nice
/// [`BACKGROUND_NICE`]): for work that must yield to serving, like the
/// scrubber's hashing. Not on the blocking pool: an unprivileged thread
/// cannot raise its priority back, and a pool thread would keep it for the
/// fills and reads it runs next. A panic in `f` becomes an
/// [`Error::Io`] naming `op` and `path`.
pub(super) async fn in_background<T, F>(op: &'static str, path: &Path, f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("bg-{op}"))
        .spawn(move || {
            lower_own_priority();
            let _ = tx.send(f());
        })
        .map_err(|e| Error::io(op, path, e))?;
    rx.await.map_err(|_| {
        Error::io(
            op,
            path,
            io::Error::other("the background thread stopped before it was done"),
        )
    })?
}

/// Sets the calling thread's nice value to [`BACKGROUND_NICE`] (on Linux,
/// `setpriority` of a thread id applies to that thread alone). Where that
/// fails, the work runs at the priority it has, with a debug line.
fn lower_own_priority() {
    use rustix::process::setpriority_process;
    if let Err(e) = setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE) {
        tracing::debug!(error = %e, "cannot lower the background thread's priority");
    }
}

/// The calling thread's nice value.
#[cfg(test)]
pub(super) fn own_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_runs_at_the_lowest_priority_and_leaves_the_pool_alone() {
        let path = Path::new("/nowhere");
        let pool = blocking("nice", path, || Ok(own_nice())).await.unwrap();
        let background = in_background("nice", path, || Ok(own_nice()))
            .await
            .unwrap();
        assert_eq!(background, BACKGROUND_NICE);
        assert_ne!(pool, BACKGROUND_NICE, "the test itself runs at nice 19");
        // Every pool thread still runs at the process's priority.
        for _ in 0..8 {
            assert_eq!(
                blocking("nice", path, || Ok(own_nice())).await.unwrap(),
                pool
            );
        }
    }

    #[tokio::test]
    async fn a_panic_in_background_work_is_an_error_naming_the_operation() {
        let err = in_background::<(), _>("scrub", Path::new("/cache/x"), || panic!("boom"))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("scrub") && text.contains("/cache/x"),
            "{text}"
        );
    }
}
