//! Callers waiting for a saga to move a booking: a create waiting for confirmation, a cancellation for its refund.
//!
//! A waiter is woken at once when this process records the booking's outcome, and handed the booking as that
//! outcome left it, so it need not read it back. It re-reads the booking every `wait_poll_ms` anyway, so an
//! outcome recorded by another replica is seen too.
//!
//! While someone waits, the slot also keeps the booking as this process last wrote it ([`Waiters::written`]), so
//! recording the outcome can start from it instead of reading it ([`Waiters::last_written`]). That copy may be
//! stale (another replica moved the booking on): whoever uses it must write under a guard that fails then, as
//! `Store::transition` does with the status it expects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::booking::Booking;

/// One [`Slot`] per booking someone waits for; the entry goes when its last waiter does, so the map holds at
/// most one entry per waiting request.
#[derive(Default)]
pub struct Waiters {
    waiting: Mutex<HashMap<Uuid, Arc<Slot>>>,
}

/// What the waiters of one booking share: the wake-up, the outcome recorded since they registered, and the
/// booking as this process last wrote it.
#[derive(Default)]
pub struct Slot {
    pub notify: Notify,
    outcome: Mutex<Option<Booking>>,
    written: Mutex<Option<Booking>>,
}

/// A registration to be woken for one booking; unregisters on drop.
pub struct Watch<'a> {
    waiters: &'a Waiters,
    booking_id: Uuid,
    slot: Arc<Slot>,
}

impl Watch<'_> {
    pub fn booking_id(&self) -> Uuid {
        self.booking_id
    }

    pub fn notify(&self) -> &Notify {
        &self.slot.notify
    }

    /// The booking as the latest outcome recorded in this process since the watch began left it, if any.
    pub fn outcome(&self) -> Option<Booking> {
        self.slot.outcome.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Waiters {
    pub fn watch(&self, booking_id: Uuid) -> Watch<'_> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let slot = waiting.entry(booking_id).or_default().clone();
        Watch {
            waiters: self,
            booking_id,
            slot,
        }
    }

    /// Hands `booking`, just written with a saga's outcome, to everyone waiting for it in this process.
    /// Keeps `booking`, just written by this process, for [`last_written`](Self::last_written), if anyone waits
    /// for it.
    pub fn written(&self, booking: &Booking) {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // Not over an outcome already recorded: the saga may finish before its booking's creator gets here.
        if let Some(slot) = waiting.get(&booking.id)
            && slot.outcome.lock().unwrap_or_else(|p| p.into_inner()).is_none()
        {
            *slot.written.lock().unwrap_or_else(|p| p.into_inner()) = Some(booking.clone());
        }
    }

    /// The booking as this process last wrote it while someone waited for it: possibly stale (see the module).
    pub fn last_written(&self, booking_id: Uuid) -> Option<Booking> {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let slot = waiting.get(&booking_id)?;
        slot.written.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn wake(&self, booking: &Booking) {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = waiting.get(&booking.id) {
            *slot.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(booking.clone());
            *slot.written.lock().unwrap_or_else(|p| p.into_inner()) = Some(booking.clone());
            slot.notify.notify_waiters();
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
            .is_some_and(|n| Arc::ptr_eq(n, &self.slot) && Arc::strong_count(n) <= 2)
        {
            waiting.remove(&self.booking_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::booking::Contact;
    use crate::locator::Locator;
    use crate::policy::Status;

    fn booking(id: Uuid, status: Status) -> Booking {
        let now = phoenix_db::Timestamp::now().datetime();
        Booking {
            id,
            locator: Locator::generate(),
            status,
            customer_id: Uuid::now_v7(),
            organization_id: None,
            created_by: Uuid::now_v7(),
            currency: "EUR".to_owned(),
            total_minor: 100,
            refunded_minor: 0,
            items: Vec::new(),
            travellers: Vec::new(),
            contact: Contact {
                email: "a@example.com".to_owned(),
                phone: None,
            },
            hold_id: None,
            payment_id: None,
            failure: None,
            cancellation: None,
            history: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn a_wake_hands_the_outcome_to_every_waiter_and_entries_go_with_the_last() {
        let waiters = Waiters::default();
        let id = Uuid::now_v7();
        let first = waiters.watch(id);
        let second = waiters.watch(id);
        assert!(first.outcome().is_none(), "nothing recorded yet");
        {
            let a = first.notify().notified();
            let b = second.notify().notified();
            tokio::pin!(a, b);
            a.as_mut().enable();
            b.as_mut().enable();
            waiters.wake(&booking(id, Status::Confirmed));
            a.await;
            b.await;
        }
        assert_eq!(first.outcome().map(|b| b.status), Some(Status::Confirmed));
        assert_eq!(second.outcome().map(|b| b.id), Some(id));
        // Another booking's outcome is not this one's.
        waiters.wake(&booking(Uuid::now_v7(), Status::Failed));
        assert_eq!(first.outcome().map(|b| b.status), Some(Status::Confirmed));
        drop(first);
        assert_eq!(waiters.len(), 1);
        drop(second);
        assert_eq!(waiters.len(), 0);
        // A watch begun after an outcome does not see it: it reads the booking instead.
        assert!(waiters.watch(id).outcome().is_none());
    }

    #[test]
    fn the_last_written_booking_is_kept_while_someone_waits_and_never_over_an_outcome() {
        let waiters = Waiters::default();
        let id = Uuid::now_v7();
        waiters.written(&booking(id, Status::Pending));
        assert!(waiters.last_written(id).is_none(), "nobody waits: nothing kept");
        let watch = waiters.watch(id);
        waiters.written(&booking(id, Status::Pending));
        assert_eq!(waiters.last_written(id).map(|b| b.status), Some(Status::Pending));
        waiters.wake(&booking(id, Status::Confirmed));
        assert_eq!(waiters.last_written(id).map(|b| b.status), Some(Status::Confirmed));
        waiters.written(&booking(id, Status::Pending));
        assert_eq!(
            waiters.last_written(id).map(|b| b.status),
            Some(Status::Confirmed),
            "a creator arriving after the outcome does not put its older copy back"
        );
        drop(watch);
        assert!(waiters.last_written(id).is_none());
    }
}
