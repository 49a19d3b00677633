//! [`Gate`]: lets a test decide when a held download body goes on.

use std::sync::Arc;

use tokio::sync::watch;

/// A gate that download bodies wait at (see [`Behaviour::hold_after`]).
///
/// It starts closed; [`open`](Gate::open) lets every body held at it (and
/// every later one) go on. Clones share one gate. Dropping the last handle
/// the test keeps does not open it: a held body then waits until its client
/// goes away or the fake shuts down, like [`Behaviour::stall_after`].
///
/// ```
/// use glance_cache_support::fake_glance::{Behaviour, Gate};
///
/// let gate = Gate::new();
/// // Send 1 MiB of the body, then the rest once the test opens the gate.
/// let held = Behaviour::default().hold_after(1 << 20, gate.clone());
/// assert!(!gate.is_open());
/// gate.open();
/// assert!(gate.is_open());
/// # let _ = held;
/// ```
///
/// [`Behaviour::hold_after`]: super::Behaviour::hold_after
/// [`Behaviour::stall_after`]: super::Behaviour::stall_after
#[derive(Clone, Debug)]
pub struct Gate {
    open: Arc<watch::Sender<bool>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Gate {
            open: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Opens the gate for good.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Whether [`open`](Gate::open) was called.
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// How many responses wait at the gate now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use glance_cache_support::fake_glance::Gate;
    /// let gate = Gate::new();
    /// assert_eq!(gate.waiting(), 0);
    /// # }
    /// ```
    pub fn waiting(&self) -> usize {
        self.open.receiver_count()
    }

    /// Resolves once the gate is open.
    pub(crate) async fn opened(&self) {
        let mut rx = self.open.subscribe();
        // The sender lives in `self`, so this only ends when the gate opens.
        let _ = rx.wait_for(|open| *open).await;
    }
}
