//! `verify`: hash cached images again and compare them with the digests
//! recorded when they were verified; quarantine those that differ.

use std::collections::BTreeMap;

use glance_cache::store::{CacheEntry, Integrity};
use glance_cache::ImageId;

use super::config::{open_store, ConfigFiles};
use super::progress::Progress;

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    config: ConfigFiles,
    /// The images to verify (default: every cached image).
    #[arg(value_name = "IMAGE_ID")]
    images: Vec<String>,
}

/// What one run found.
#[derive(Default)]
struct Tally {
    intact: usize,
    corrupt: usize,
    unverifiable: usize,
    not_cached: usize,
    /// Listed, but gone by their turn (pruned or quarantined by a serving
    /// proxy meanwhile).
    removed: usize,
    /// Could not be read (or the index failed): neither intact nor corrupt.
    unchecked: usize,
}

/// Verifies the named images (or every cached one), one line each, then
/// `verified N images: I intact, C corrupt (quarantined), U without a
/// recorded checksum` (and `, F could not be checked` when some could not
/// be read, `, R removed meanwhile` when some listed images were gone by
/// their turn). Fails (exit status 1) when any image was corrupt or could
/// not be checked, or a named image is not cached (a listed one removed
/// meanwhile is no failure); one image that cannot be read does not stop
/// the others from being checked.
pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let mut named = Vec::with_capacity(args.images.len());
    for text in &args.images {
        match ImageId::parse(text) {
            Ok(id) => named.push(id),
            Err(e) => anyhow::bail!("{text:?} is not an image id: {e}"),
        }
    }
    let config = args.config.load()?;
    let store = open_store(&config, "verify").await?;
    let entries: BTreeMap<ImageId, CacheEntry> = store
        .list()
        .await?
        .into_iter()
        .map(|e| (e.image_id.clone(), e))
        .collect();
    let listed = named.is_empty();
    let ids: Vec<ImageId> = if listed {
        entries.keys().cloned().collect()
    } else {
        named
    };
    let progress = Progress::new();
    let mut tally = Tally::default();
    for id in &ids {
        let bar = progress.image(id.as_str());
        if let Some(entry) = entries.get(id) {
            bar.set_total(entry.size);
        }
        let outcome = store.verify_entry(id, None, bar.advancer()).await;
        let line = match &outcome {
            Err(e) => {
                tally.unchecked += 1;
                format!("{id} NOT CHECKED: {e}")
            }
            Ok(Integrity::Intact) => {
                tally.intact += 1;
                format!("{id} intact")
            }
            Ok(Integrity::Quarantined(why)) => {
                tally.corrupt += 1;
                format!(
                    "{id} CORRUPT ({why}): moved to invalid/, fetched again at its next download"
                )
            }
            Ok(Integrity::NotCached) if listed => {
                tally.removed += 1;
                format!("{id} removed meanwhile (no longer cached)")
            }
            Ok(Integrity::NotCached) => {
                tally.not_cached += 1;
                format!("{id} not cached")
            }
            _ => {
                tally.unverifiable += 1;
                format!(
                    "{id} not verified: no recorded checksum (adopted); the proxy verifies it \
                     against the upstream at its next download"
                )
            }
        };
        bar.finish(&line);
    }
    let unchecked = note(tally.unchecked, "could not be checked");
    let removed = note(tally.removed, "removed meanwhile");
    println!(
        "verified {} images: {} intact, {} corrupt (quarantined), {} without a recorded \
         checksum{unchecked}{removed}",
        ids.len() - tally.not_cached - tally.removed,
        tally.intact,
        tally.corrupt,
        tally.unverifiable
    );
    if tally.corrupt > 0 {
        anyhow::bail!("{} corrupt cached images quarantined", tally.corrupt);
    }
    if tally.unchecked > 0 {
        anyhow::bail!(
            "{} cached images could not be checked (see their lines above)",
            tally.unchecked
        );
    }
    if tally.not_cached > 0 {
        anyhow::bail!("{} of the named images are not cached", tally.not_cached);
    }
    Ok(())
}

/// `, N what` for a count the summary names only when it is not zero.
fn note(n: usize, what: &str) -> String {
    match n {
        0 => String::new(),
        n => format!(", {n} {what}"),
    }
}
