//! Questions to the upstream in flight, so that callers who need the same
//! answer at the same time share one round trip.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::ImageId;

/// Who asks about which image: the caller's exact credentials and the
/// image. Two callers share an answer only when both are equal.
pub(crate) type Question = (Vec<u8>, ImageId);

/// The questions being answered right now, each with the cell its answer
/// is written into once.
#[derive(Debug)]
pub(crate) struct InFlight<T> {
    map: Mutex<HashMap<Question, Arc<OnceCell<T>>>>,
}

impl<T: Clone> InFlight<T> {
    pub(crate) fn new() -> Self {
        InFlight {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Question, Arc<OnceCell<T>>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer to `question`: computed by `ask` if nobody is computing
    /// it, else the answer of the caller who is. When the caller computing
    /// it gives up (its future is dropped), one of the callers waiting
    /// takes over with its own `ask`.
    pub(crate) async fn answer<F, Fut>(&self, question: Question, ask: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let cell = {
            let mut map = self.lock();
            map.entry(question.clone()).or_default().clone()
        };
        let _done = Forget {
            inflight: self,
            question,
            cell: &cell,
        };
        cell.get_or_init(ask).await.clone()
    }

    /// How many questions are being answered (or were abandoned by all
    /// their callers and not yet removed: none, once every caller is done).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Removes a question from the map when it has its answer (later callers
/// ask again, or use what was remembered) or when its last caller leaves.
struct Forget<'a, T> {
    inflight: &'a InFlight<T>,
    question: Question,
    cell: &'a Arc<OnceCell<T>>,
}

impl<T> Drop for Forget<'_, T> {
    fn drop(&mut self) {
        let mut map = self.inflight.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some(current) = map.get(&self.question) else {
            return;
        };
        // Another round may have started since (this one answered and was
        // removed): leave it alone.
        if !Arc::ptr_eq(current, self.cell) {
            return;
        }
        // The map's reference and this caller's: nobody else waits.
        let last = Arc::strong_count(self.cell) <= 2;
        if self.cell.initialized() || last {
            map.remove(&self.question);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn question(identity: &[u8]) -> Question {
        let id = ImageId::parse("40000000-0000-0000-0000-000000000001").unwrap();
        (identity.to_vec(), id)
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_answer() {
        let inflight = Arc::new(InFlight::<u32>::new());
        let asked = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (inflight, asked) = (inflight.clone(), asked.clone());
            tasks.push(tokio::spawn(async move {
                inflight
                    .answer(question(b"T1"), || async {
                        asked.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        7
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!(inflight.len(), 0, "answered questions are forgotten");
    }

    #[tokio::test]
    async fn different_credentials_are_asked_separately() {
        let inflight = InFlight::<u32>::new();
        let asked = AtomicUsize::new(0);
        let ask = |n| {
            let asked = &asked;
            move || async move {
                asked.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                n
            }
        };
        let (a, b) = tokio::join!(
            inflight.answer(question(b"T1"), ask(1)),
            inflight.answer(question(b"T2"), ask(2))
        );
        assert_eq!((a, b), (1, 2));
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_waiter_takes_over_when_the_asker_gives_up() {
        let inflight = Arc::new(InFlight::<u32>::new());
        let first = {
            let inflight = inflight.clone();
            tokio::spawn(async move {
                inflight
                    .answer(question(b"T1"), || async {
                        std::future::pending::<()>().await;
                        1
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = {
            let inflight = inflight.clone();
            tokio::spawn(async move { inflight.answer(question(b"T1"), || async { 2 }).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        let answer = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the waiter took over")
            .unwrap();
        assert_eq!(answer, 2);
        assert_eq!(inflight.len(), 0);
    }

    #[tokio::test]
    async fn an_abandoned_question_is_forgotten() {
        let inflight = InFlight::<u32>::new();
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            inflight.answer(question(b"T1"), std::future::pending),
        )
        .await;
        assert!(gave_up.is_err());
        assert_eq!(inflight.len(), 0);
    }
}
