//! Background work beside the request path: the prefetch workers and cache
//! maintenance. A [`Stack`](crate::Stack) starts both.
//!
//! * [`Prefetcher`]: caches images queued with `PUT /v2/cache/{id}` at
//!   once, through the same single-flight fills as client downloads
//!   ([`PrefetchOptions`]).
//! * Maintenance ([`MaintenanceOptions`]): keeps the cache under
//!   `image_cache_max_size` after every commit and cleans `invalid/` and
//!   stalled `incomplete/` files periodically, so no cron job is needed.

mod maintenance;
mod prefetch;

pub use maintenance::MaintenanceOptions;
pub use prefetch::{PrefetchError, PrefetchOptions, PrefetchProgress, Prefetched, Prefetcher};
