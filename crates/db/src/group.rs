//! Group commit: many callers' small writes applied together, one transaction for all of them.
//!
//! A write that must be durable before its caller goes on (a saga's step, say) costs a round trip per statement
//! plus `BEGIN` and `COMMIT`, and on SQLite an fsync per commit. When many callers write at once, a
//! [`GroupCommit`] hands their writes to one task that takes everything queued (up to a bound), applies it in
//! one transaction, and answers each caller with its own result only once that transaction has committed. Nobody
//! waits for a batch to fill: a lone write goes at once, and writes arriving while a batch commits form the next.
//!
//! The handler gets the batch in arrival order and must answer one result per item, in that order. If it cannot
//! answer an item (it panicked, or answered too few), that caller gets [`Closed`] instead of a result, and the task
//! goes on with the next batch: one bad batch does not stop every later writer.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;

use tokio::sync::{mpsc, oneshot};

/// No answer for this write: its batch's handler panicked or answered too few, or the task is gone (the runtime is
/// shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the group commit task has stopped")]
pub struct Closed;

type Job<T, R> = (T, oneshot::Sender<R>);

/// A queue of writes applied in batches by one task. Cheap to clone; the task stops when the last clone drops.
pub struct GroupCommit<T, R> {
    queue: mpsc::Sender<Job<T, R>>,
}

impl<T, R> Clone for GroupCommit<T, R> {
    fn clone(&self) -> Self {
        GroupCommit {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Starts the task (on the current Tokio runtime). `apply` gets at most `max_batch` items at once; at most
    /// `queue_depth` more wait behind it, and further callers wait for room.
    pub fn start<F, Fut>(max_batch: usize, queue_depth: usize, apply: F) -> GroupCommit<T, R>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send,
    {
        let max_batch = max_batch.max(1);
        let (queue, mut jobs) = mpsc::channel::<Job<T, R>>(queue_depth.max(1));
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max_batch);
            while jobs.recv_many(&mut batch, max_batch).await > 0 {
                let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.drain(..).unzip();
                let results = match AssertUnwindSafe(apply(items)).catch_unwind().await {
                    Ok(results) => results,
                    Err(_) => {
                        tracing::error!(
                            callers = replies.len(),
                            "a group commit batch panicked; its callers get Closed"
                        );
                        Vec::new()
                    }
                };
                // A caller that gave up waiting is not an error: its write was applied all the same.
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
        });
        GroupCommit { queue }
    }

    /// Queues `item` and waits for the batch that carries it to be applied.
    pub async fn submit(&self, item: T) -> Result<R, Closed> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).await.map_err(|_| Closed)?;
        answer.await.map_err(|_| Closed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_gets_its_own_answer_and_racing_callers_share_batches() {
        let batches = Arc::new(AtomicUsize::new(0));
        let seen = batches.clone();
        let group = GroupCommit::start(16, 1_000, move |items: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                assert!(items.len() <= 16, "a batch of {}", items.len());
                // Slow enough that callers queue up behind the batch being applied.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                items.into_iter().map(|n| n * 2).collect()
            }
        });
        let callers: Vec<_> = (0..200u32)
            .map(|n| {
                let group = group.clone();
                tokio::spawn(async move { (n, group.submit(n).await) })
            })
            .collect();
        for caller in callers {
            let (n, answer) = caller.await.expect("caller task");
            assert_eq!(answer, Ok(n * 2));
        }
        let batches = batches.load(Ordering::SeqCst);
        assert!(
            (200 / 16..200).contains(&batches),
            "200 racing writes took {batches} batches"
        );
    }

    #[tokio::test]
    async fn a_handler_that_answers_too_few_leaves_the_rest_closed_not_hanging() {
        let group = GroupCommit::start(
            8,
            8,
            |items: Vec<u32>| async move { items.into_iter().skip(1).collect() },
        );
        assert_eq!(group.submit(1).await, Err(Closed));
    }

    #[tokio::test]
    async fn a_batch_that_panics_fails_its_callers_and_the_next_batch_is_applied() {
        let group = GroupCommit::start(8, 8, |items: Vec<u32>| async move {
            assert!(!items.contains(&13), "the handler panics on 13");
            items
        });
        assert_eq!(group.submit(13).await, Err(Closed));
        assert_eq!(group.submit(1).await, Ok(1));
        assert_eq!(group.submit(2).await, Ok(2));
    }
}
