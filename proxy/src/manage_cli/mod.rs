//! The cache commands of `glance-cache-manage`, as subcommands of
//! `glance-cache-proxy`: `list-cached`, `list-queued`, `queue-image`,
//! `delete-cached-image`, `delete-all-cached-images`,
//! `delete-queued-image`, `delete-all-queued-images`.
//!
//! They talk to a RUNNING proxy over plain http, through the legacy
//! management API `glance-cache-manage` uses:
//!
//! | command | request |
//! |---|---|
//! | `list-cached` | `GET /v2/cached_images` |
//! | `list-queued` | `GET /v2/queued_images` |
//! | `queue-image <ID>` | `PUT /v2/queued_images/<ID>` |
//! | `delete-cached-image <ID>` | `DELETE /v2/cached_images/<ID>` |
//! | `delete-all-cached-images` | `DELETE /v2/cached_images` |
//! | `delete-queued-image <ID>` | `DELETE /v2/queued_images/<ID>` |
//! | `delete-all-queued-images` | `DELETE /v2/queued_images` |
//!
//! Output, prompts and error messages are Glance's (tables like
//! `prettytable`, times like Python's `utcfromtimestamp().isoformat()`),
//! except that prompts and errors go to stderr, and `--format json` prints
//! one JSON document for scripts. Options are `glance-cache-manage`'s:
//! `-H/--host`, `-p/--port`, `-f/--force`, `-v`, `-d`, a token
//! (`--os-auth-token`, `OS_AUTH_TOKEN`) or Keystone password
//! authentication from the usual `OS_*` variables.
//!
//! # Example
//!
//! ```text
//! $ export OS_AUTH_TOKEN=...            # or OS_AUTH_URL, OS_USERNAME, ...
//! $ glance-cache-proxy list-cached -H 127.0.0.1 -p 9292
//! Found 1 cached images...
//! +--------------------------------------+---------------------+----------------------------+------+------+
//! |                  ID                  | Last Accessed (UTC) |    Last Modified (UTC)     | Size | Hits |
//! +--------------------------------------+---------------------+----------------------------+------+------+
//! | 11111111-1111-4111-8111-111111111111 |         N/A         | 2026-11-24T08:19:54.538803 |    9 |    0 |
//! +--------------------------------------+---------------------+----------------------------+------+------+
//! $ glance-cache-proxy queue-image -v 22222222-2222-4222-8222-222222222222
//! Queue image 22222222-2222-4222-8222-222222222222 for caching? [y/N] y
//! Queued image 22222222-2222-4222-8222-222222222222 for caching
//! Completed in 0.0042 sec.
//! ```

mod auth;
mod client;
mod commands;
mod isotime;
mod options;
mod prompt;
mod table;

use clap::{Args, Subcommand};

pub(crate) use commands::run;
use options::CommonArgs;

const LIST_EXIT: &str = "\
Exit status:
  0  listed
  1  failed: not authenticated (401), not authorized (403), cache management
     not enabled on the proxy (404), proxy not reachable, Keystone refused
     the credentials, or any other error (one line on stderr)
  2  invalid command line";

const CHANGE_EXIT: &str = "\
Exit status:
  0  done, or the confirmation was refused or unanswered (nothing changed)
  1  failed: image ID missing, repeated or not a UUID, not authenticated
     (401), not authorized (403), cache management not enabled on the proxy
     (404), proxy not reachable, Keystone refused the credentials, or any
     other error (one line on stderr)
  2  invalid command line";

/// The `glance-cache-manage` commands, for the top-level command enum (as
/// a `#[command(flatten)]` variant). The arguments are boxed so that the
/// enum stays small.
#[derive(Debug, Subcommand)]
pub(crate) enum ManageCommand {
    /// List all images currently cached by a running proxy.
    #[command(
        long_about = "List all images currently cached by a running proxy \
                      (GET /v2/cached_images, like glance-cache-manage list-cached).",
        after_help = LIST_EXIT
    )]
    ListCached(Box<ListArgs>),
    /// List all images currently queued for caching.
    #[command(
        long_about = "List all images currently queued for caching \
                      (GET /v2/queued_images, like glance-cache-manage list-queued).",
        after_help = LIST_EXIT
    )]
    ListQueued(Box<ListArgs>),
    /// Queue an image for caching.
    #[command(
        long_about = "Queue an image for caching (PUT /v2/queued_images/<IMAGE_ID>, like \
                      glance-cache-manage queue-image). Like Glance's legacy API this only \
                      adds the id to the on-disk queue: nothing is checked or fetched now; \
                      the proxy fetches queued images when it starts. For immediate caching \
                      use `glance cache-queue`.",
        override_usage = "glance-cache-proxy queue-image [OPTIONS] <IMAGE_ID>",
        after_help = CHANGE_EXIT
    )]
    QueueImage(Box<ImageArgs>),
    /// Purge an image from the cache.
    #[command(
        long_about = "Purge an image from the cache (DELETE /v2/cached_images/<IMAGE_ID>, \
                      like glance-cache-manage delete-cached-image). Not an error when it is \
                      not cached.",
        override_usage = "glance-cache-proxy delete-cached-image [OPTIONS] <IMAGE_ID>",
        after_help = CHANGE_EXIT
    )]
    DeleteCachedImage(Box<ImageArgs>),
    /// Remove all images from the cache.
    #[command(
        long_about = "Remove all images from the cache (DELETE /v2/cached_images, like \
                      glance-cache-manage delete-all-cached-images).",
        after_help = CHANGE_EXIT
    )]
    DeleteAllCachedImages(Box<ChangeArgs>),
    /// Delete an image from the cache queue.
    #[command(
        long_about = "Delete an image from the cache queue (DELETE \
                      /v2/queued_images/<IMAGE_ID>, like glance-cache-manage \
                      delete-queued-image). Not an error when it is not queued.",
        override_usage = "glance-cache-proxy delete-queued-image [OPTIONS] <IMAGE_ID>",
        after_help = CHANGE_EXIT
    )]
    DeleteQueuedImage(Box<ImageArgs>),
    /// Delete all images from the cache queue.
    #[command(
        long_about = "Delete all images from the cache queue (DELETE /v2/queued_images, \
                      like glance-cache-manage delete-all-queued-images).",
        after_help = CHANGE_EXIT
    )]
    DeleteAllQueuedImages(Box<ChangeArgs>),
}

/// Options of the list commands.
#[derive(Clone, Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Options of the commands that change everything (no image id).
#[derive(Clone, Debug, Args)]
pub(crate) struct ChangeArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,

    #[command(flatten)]
    common: CommonArgs,
}

/// Options of the commands that take one image id.
#[derive(Clone, Debug, Args)]
pub(crate) struct ImageArgs {
    /// The image's id (a UUID); exactly one.
    #[arg(value_name = "IMAGE_ID")]
    ids: Vec<String>,

    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,

    #[command(flatten)]
    common: CommonArgs,
}
