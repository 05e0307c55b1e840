use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use phoenix_db::Timestamp;

/// Where "now" comes from. Expiry is decided against this clock (never the database's), so tests can move time
/// instead of waiting for it.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    /// A clock that moves only when told to (microseconds since the epoch).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start: Timestamp) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start.unix_micros())))
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Manual(micros) => Timestamp::from_unix_micros(micros.load(Ordering::SeqCst)),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: time::Duration) {
        if let Clock::Manual(micros) = self {
            micros.fetch_add(by.whole_microseconds() as i64, Ordering::SeqCst);
        }
    }
}
