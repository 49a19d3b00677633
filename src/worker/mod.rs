//! Background work: the prefetch queue and cache maintenance.
//!
//! * [`Prefetcher`]: caches images queued with `PUT /v2/cache/{id}` at
//!   once, through the same single-flight fills as client downloads.
//! * [`Maintenance`]: keeps the cache under `image_cache_max_size` after
//!   every commit and cleans `invalid/` and stalled `incomplete/` files
//!   periodically, so no cron job is needed.

mod maintenance;
mod prefetch;

pub use maintenance::Maintenance;
pub use prefetch::{Prefetcher, PrefetcherBuilder};
