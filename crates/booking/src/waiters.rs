//! Callers waiting for a saga to move a booking: a create waiting for confirmation, a cancellation for its refund.
//!
//! A waiter is woken at once when this process records the booking's outcome, and re-reads the booking every
//! `wait_poll_ms` anyway, so an outcome recorded by another replica is seen too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

/// One [`Notify`] per booking someone waits for; the entry goes when its last waiter does, so the map holds at
/// most one entry per waiting request.
#[derive(Default)]
pub struct Waiters {
    waiting: Mutex<HashMap<Uuid, Arc<Notify>>>,
}

/// A registration to be woken for one booking; unregisters on drop.
pub struct Watch<'a> {
    waiters: &'a Waiters,
    booking_id: Uuid,
    pub notify: Arc<Notify>,
}

impl Waiters {
    pub fn watch(&self, booking_id: Uuid) -> Watch<'_> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let notify = waiting.entry(booking_id).or_default().clone();
        Watch {
            waiters: self,
            booking_id,
            notify,
        }
    }

    /// Wakes everyone waiting for `booking_id` in this process.
    pub fn wake(&self, booking_id: Uuid) {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(notify) = waiting.get(&booking_id) {
            notify.notify_waiters();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut waiting = self.waiters.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: nobody else waits for this booking.
        if waiting
            .get(&self.booking_id)
            .is_some_and(|n| Arc::ptr_eq(n, &self.notify) && Arc::strong_count(n) <= 2)
        {
            waiting.remove(&self.booking_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_every_waiter_and_entries_go_with_the_last() {
        let waiters = Waiters::default();
        let id = Uuid::now_v7();
        let first = waiters.watch(id);
        let second = waiters.watch(id);
        {
            let a = first.notify.notified();
            let b = second.notify.notified();
            tokio::pin!(a, b);
            a.as_mut().enable();
            b.as_mut().enable();
            waiters.wake(id);
            a.await;
            b.await;
        }
        drop(first);
        assert_eq!(waiters.len(), 1);
        drop(second);
        assert_eq!(waiters.len(), 0);
    }
}
