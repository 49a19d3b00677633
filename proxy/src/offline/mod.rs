//! One-shot maintenance commands that work on `image_cache_dir` directly:
//! `prune`, `clean`, `prefetch`, `verify` and `install-links`.
//!
//! They read the same configuration files as `serve` and need no running
//! proxy, yet are safe while one serves the same directory: prunes and
//! cleans of all processes are serialised by the store's lock files, and a
//! prefetch fills images exactly like the proxy does (through a
//! [`CacheLayer`](glance_cache::CacheLayer) over a
//! [`ReverseProxy`](glance_cache::reverse_proxy::ReverseProxy)), so its
//! incomplete files are created exclusively and locked, verified, and
//! committed with `fsync` + `rename`. None of them reconciles the directory
//! (that is the serving proxy's job at startup); each does only what it
//! says.
//!
//! Glance's historical names work too: invoked through a symlink named
//! `glance-cache-pruner`, `glance-cache-cleaner` or `glance-cache-prefetcher`
//! (see [`args_for_program_name`] and `install-links`), the binary
//! behaves as `glance-cache-proxy prune|clean|prefetch`, so existing cron
//! lines keep working.
//!
//! | command | prints | exit status |
//! |---|---|---|
//! | `prune` | `pruned N files, B bytes (cache now S of MAX bytes)` | 0; 1 on error |
//! | `clean` | `removed N invalid and M stalled incomplete files` | 0; 1 on error |
//! | `prefetch` | one line (or a progress bar) per image, then `cached N of M queued images (K failed)` | 0 when every queued image is cached; 1 otherwise |
//! | `verify [ID…]` | one line (or a progress bar) per image, then `verified N images: I intact, C corrupt (quarantined), U without a recorded checksum` (and `, R removed meanwhile` for listed images a serving proxy removed before their turn) | 0; 1 when any image was corrupt (it is quarantined) or could not be checked, or a named image is not cached |
//! | `install-links` | one line per link | 0; 1 when a link cannot be made |
//!
//! Errors are one line on stderr, `glance-cache-proxy: error: ...`.
//!
//! # Example
//!
//! ```text
//! # crontab of the glance user, unchanged from a Glance node:
//! */30 * * * * glance-cache-pruner --config-file /etc/glance/glance-cache.conf
//! 0 3 * * *    glance-cache-cleaner --config-file /etc/glance/glance-cache.conf
//! # or, by the new names:
//! */30 * * * * glance-cache-proxy prune --config-file /etc/glance/glance-cache.conf
//! ```

mod clean;
mod config;
mod links;
mod prefetch;
mod progress;
mod prune;
mod verify;

use clap::Subcommand;

pub(crate) use links::args_for_program_name;

/// The offline maintenance subcommands (flattened into the top-level
/// command list).
#[derive(Debug, Subcommand)]
pub(crate) enum OfflineCommand {
    /// Prune the cache directory once, least recently used images first,
    /// until it fits in image_cache_max_size (like glance-cache-pruner).
    #[command(after_help = "Exit status: 0 on success, 1 on error.")]
    Prune(prune::PruneArgs),
    /// Remove every file in invalid/ and the incomplete/ files older than
    /// image_cache_stall_time that no writer holds (like glance-cache-cleaner).
    #[command(after_help = "Exit status: 0 on success, 1 on error.")]
    Clean(clean::CleanArgs),
    /// Cache every image in the prefetch queue from the upstream image
    /// service, oldest first (like glance-cache-prefetcher).
    #[command(
        after_help = "Exit status: 0 when every queued image is cached; 1 when any failed \
                      (failed images stay queued) or on error."
    )]
    Prefetch(prefetch::PrefetchArgs),
    /// Hash cached images again (every one, or those named) and compare them
    /// with the digests recorded when they were verified; corrupt ones are
    /// quarantined. Safe beside a serving proxy.
    #[command(
        after_help = "Exit status: 0 when every image is intact (or has no recorded checksum); \
                      1 when any was corrupt (it was moved to invalid/), a named image is not \
                      cached, or on error."
    )]
    Verify(verify::VerifyArgs),
    /// Create the symlinks glance-cache-pruner, glance-cache-cleaner and
    /// glance-cache-prefetcher to this binary, for Glance's command names.
    #[command(after_help = "Exit status: 0 when all three links exist, 1 otherwise.")]
    InstallLinks(links::InstallLinksArgs),
}

/// Runs one offline command to completion.
pub(crate) async fn run(command: OfflineCommand) -> anyhow::Result<()> {
    match command {
        OfflineCommand::Prune(args) => prune::run(args).await,
        OfflineCommand::Clean(args) => clean::run(args).await,
        OfflineCommand::Prefetch(args) => prefetch::run(args).await,
        OfflineCommand::Verify(args) => verify::run(args).await,
        OfflineCommand::InstallLinks(args) => links::install(args),
    }
}
