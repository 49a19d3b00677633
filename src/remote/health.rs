//! Whether the remote store is worth asking: after a failure it is left
//! alone for a pause, so that a store that is down, slow or refusing the
//! credentials costs one bounded wait and one log line, not one per
//! request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::RemoteError;
use crate::metrics::{Metrics, RemoteEvent};

/// How long the store is left alone after a failure, by default.
pub(crate) const PAUSE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Health {
    state: Mutex<State>,
    pause: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(PAUSE)
    }
}

#[derive(Debug, Default)]
struct State {
    /// Set while failing: the time of the next try.
    retry_at: Option<Instant>,
}

impl Health {
    pub(crate) fn new(pause: Duration) -> Self {
        Health {
            state: Mutex::default(),
            pause,
        }
    }

    /// `Err` while the store is paused after a failure.
    pub(crate) fn gate(&self) -> Result<(), RemoteError> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.retry_at {
            Some(at) if at > Instant::now() => Err(RemoteError::Unavailable {
                retry_in: at - Instant::now(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn success(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.retry_at.take().is_some() {
            tracing::info!("remote store answers again; using the remote tier");
        }
    }

    pub(crate) fn failure(&self, error: &RemoteError, metrics: &Metrics) {
        metrics.remote(RemoteEvent::Error);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let first = state.retry_at.is_none();
        state.retry_at = Some(Instant::now() + self.pause);
        drop(state);
        if !first {
            tracing::debug!(error = %error, "remote store still failing");
        } else if error.is_access_denied() {
            tracing::error!(error = %error,
                "the remote store refuses this proxy's credentials or the bucket: check \
                 remote_store_access_key_id / remote_store_secret_access_key (or \
                 AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket policy; downloads \
                 go to the upstream meanwhile");
        } else {
            tracing::warn!(error = %error, pause = ?self.pause,
                "remote store failed; downloads go to the upstream, the store is tried again \
                 after the pause");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_pauses_the_store_and_counts_once() {
        let (health, metrics) = (Health::default(), Metrics::new());
        health.gate().unwrap();
        health.failure(&RemoteError::Config("x".into()), &metrics);
        assert!(matches!(
            health.gate(),
            Err(RemoteError::Unavailable { retry_in }) if retry_in <= PAUSE
        ));
        assert_eq!(metrics.snapshot().remote(RemoteEvent::Error), 1);
        health.success();
        health.gate().unwrap();
    }
}
