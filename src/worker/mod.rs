//! Background work beside the request path: the prefetch workers and cache
//! maintenance. A [`Stack`](crate::Stack) starts both.
//!
//! * [`Prefetcher`]: caches images queued with `PUT /v2/cache/{id}` at
//!   once, through the same single-flight fills as client downloads
//!   ([`PrefetchOptions`]).
//! * Maintenance ([`MaintenanceOptions`]): keeps the cache under
//!   `image_cache_max_size` after every commit and cleans `invalid/` and
//!   stalled `incomplete/` files periodically, so no cron job is needed, and
//!   scrubs cached files (hashes them again at a bounded rate).

mod maintenance;
mod prefetch;
mod scrub;

pub use maintenance::{MaintenanceOptions, DEFAULT_SCRUB_RATE};
pub use prefetch::{PrefetchError, PrefetchOptions, PrefetchProgress, Prefetched, Prefetcher};
