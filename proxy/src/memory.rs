//! Giving memory back to the system after a burst of downloads.
//!
//! glibc's allocator keeps the memory a burst freed (thousands of response
//! buffers, connection state) in its arenas: after the 1000-download
//! bursts of `benches/load/storm.py` the proxy stayed at 115–150 MiB of
//! RSS without this, against 17 MiB fresh (15–25 MiB with it).
//! `malloc_trim(0)` returns those free pages. Every [`CHECK_EVERY`], when
//! the resident set is more than [`SLACK`] above the smallest seen after a
//! trim, the allocator is trimmed: during a burst that returns what is
//! already free, after it everything. (Other allocators, such as musl's,
//! give memory back on their own; there this does nothing.)

use std::time::Duration;

/// How often the resident set is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Growth of the resident set over its floor that is worth a trim.
const SLACK: u64 = 32 << 20;

/// Spawns the task that trims the allocator once memory has grown.
pub(crate) fn spawn_trim_after_bursts() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    tokio::spawn(async move {
        let mut floor = u64::MAX;
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let checked = tokio::task::spawn_blocking(move || {
                let before = resident_bytes()?;
                if before <= floor.saturating_add(SLACK) {
                    return Some((before, None));
                }
                trim();
                Some((before, resident_bytes()))
            })
            .await;
            match checked {
                Ok(Some((before, None))) => floor = floor.min(before),
                Ok(Some((before, Some(after)))) => {
                    tracing::debug!(before, after, "allocator trimmed");
                    floor = floor.min(after);
                }
                _ => return,
            }
        }
    });
}

/// The resident set of this process, from `/proc/self/status`.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::os::raw::c_int;
    }
    // SAFETY: glibc's malloc_trim takes no pointers and may be called from
    // any thread at any time; it only gives free memory back.
    #[allow(unsafe_code)]
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
