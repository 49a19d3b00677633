//! What `prefetch` and `verify` show while they work: a progress bar per
//! image on a terminal, one line per finished image otherwise.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The display of one `prefetch` run.
#[derive(Clone)]
pub(crate) struct Progress {
    /// `Some` when stdout is a terminal.
    bars: Option<MultiProgress>,
}

/// The display of one image.
pub(crate) struct ImageProgress {
    bar: Option<ProgressBar>,
    owner: Progress,
}

impl Progress {
    /// Bars when stdout is a terminal, plain lines otherwise.
    pub(crate) fn new() -> Self {
        let bars = std::io::stdout()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        Progress { bars }
    }

    /// Starts showing the download of `id` (`total` bytes, when known).
    pub(crate) fn image(&self, id: &str) -> ImageProgress {
        let bar = self.bars.as_ref().map(|bars| {
            let style = ProgressStyle::with_template(
                "{prefix} [{wide_bar}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} ETA {eta:>3}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bars.add(
                ProgressBar::no_length()
                    .with_style(style)
                    // The full id is in the image's result line.
                    .with_prefix(id.chars().take(8).collect::<String>()),
            )
        });
        ImageProgress {
            bar,
            owner: self.clone(),
        }
    }

    /// Prints a line above the bars (or just a line).
    pub(crate) fn println(&self, line: &str) {
        match &self.bars {
            Some(bars) => {
                if bars.println(line).is_err() {
                    println!("{line}");
                }
            }
            None => println!("{line}"),
        }
    }
}

impl glance_cache::worker::PrefetchProgress for ImageProgress {
    fn total(&self, bytes: u64) {
        self.set_total(bytes);
    }

    fn advance(&self, bytes: u64) {
        ImageProgress::advance(self, bytes);
    }
}

impl ImageProgress {
    /// The size of the image, once known.
    pub(crate) fn set_total(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(bytes);
        }
    }

    /// A function that advances the bar, for work on another thread.
    pub(crate) fn advancer(&self) -> impl FnMut(u64) + Send + 'static {
        let bar = self.bar.clone();
        move |bytes| {
            if let Some(bar) = &bar {
                bar.inc(bytes);
            }
        }
    }

    /// `bytes` more have arrived.
    pub(crate) fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    /// Removes the bar and prints the image's one-line result.
    pub(crate) fn finish(self, line: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            if let Some(bars) = &self.owner.bars {
                bars.remove(bar);
            }
        }
        self.owner.println(line);
    }
}
