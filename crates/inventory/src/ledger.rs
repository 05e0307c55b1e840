//! The in-memory ledger a writer applies a batch to: pure arithmetic on the fresh counters of the buckets the batch
//! touches, read under lock. Every rule of inventory lives here, where it can be tested without a database.
//!
//! Invariant: for every bucket, `held + sold <= capacity + overbooking_limit`, and `held`, `sold` never go
//! negative. `reserve` and `resize` refuse what would break it; `confirm` and `release` only move or free units
//! that a hold already has, so they cannot break it (and report a corrupt ledger if they would).

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::hold::Line;
use crate::item::{Bucket, ItemId, Size};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    size: Size,
    held: i64,
    sold: i64,
    /// See [`Bucket::asked_capacity`].
    asked: Option<i64>,
}

impl Counts {
    /// After units were freed: a capacity kept above what was asked comes down with them, never below what is
    /// still held and sold, and never below what was asked.
    fn follow_asked(&mut self) {
        let Some(asked) = self.asked else {
            return;
        };
        let needed = self.held + self.sold - self.size.overbooking_limit;
        self.size.capacity = self.size.capacity.min(needed.max(asked));
        if self.size.capacity <= asked {
            self.size.capacity = asked;
            self.asked = None;
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    organization_id: Option<Uuid>,
    before: Option<Counts>,
    now: Counts,
}

/// Why a hold cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Some items have no bucket.
    UnknownItems(Vec<ItemId>),
    /// Some items have too few units left.
    Insufficient(Vec<Shortage>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub item_id: ItemId,
    pub requested: i64,
    pub available: i64,
}

/// The counters say something impossible: a bug or a corrupted database, never a client's mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger invariant broken on {item_id}: {what}")]
pub struct Broken {
    pub item_id: String,
    pub what: &'static str,
}

/// How one bucket changed in the batch, to be written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created {
        bucket: Bucket,
    },
    Updated {
        item_id: ItemId,
        size: Option<Size>,
        held_delta: i64,
        sold_delta: i64,
        /// The bucket's asked capacity after the batch (written whatever it was).
        asked: Option<i64>,
    },
}

#[derive(Debug, Default)]
pub struct Ledger {
    entries: BTreeMap<ItemId, Entry>,
}

impl Ledger {
    pub fn new(buckets: impl IntoIterator<Item = Bucket>) -> Ledger {
        let entries = buckets
            .into_iter()
            .map(|b| {
                let counts = Counts {
                    size: Size {
                        capacity: b.capacity,
                        overbooking_limit: b.overbooking_limit,
                    },
                    held: b.held,
                    sold: b.sold,
                    asked: b.asked_capacity,
                };
                let entry = Entry {
                    organization_id: b.organization_id,
                    before: Some(counts),
                    now: counts,
                };
                (b.item_id, entry)
            })
            .collect();
        Ledger { entries }
    }

    pub fn bucket(&self, item_id: &ItemId) -> Option<Bucket> {
        self.entries.get(item_id).map(|e| Bucket {
            item_id: item_id.clone(),
            organization_id: e.organization_id,
            capacity: e.now.size.capacity,
            overbooking_limit: e.now.size.overbooking_limit,
            held: e.now.held,
            sold: e.now.sold,
            asked_capacity: e.now.asked,
        })
    }

    /// Takes every line's units, or none of them.
    pub fn reserve(&mut self, lines: &[Line]) -> Result<(), Refusal> {
        let unknown: Vec<ItemId> = lines
            .iter()
            .filter(|l| !self.entries.contains_key(&l.item_id))
            .map(|l| l.item_id.clone())
            .collect();
        if !unknown.is_empty() {
            return Err(Refusal::UnknownItems(unknown));
        }
        let short: Vec<Shortage> = lines
            .iter()
            .filter_map(|line| {
                let now = self.entries.get(&line.item_id)?.now;
                let available = (now.size.limit() - now.held - now.sold).max(0);
                (line.quantity > available).then(|| Shortage {
                    item_id: line.item_id.clone(),
                    requested: line.quantity,
                    available,
                })
            })
            .collect();
        if !short.is_empty() {
            return Err(Refusal::Insufficient(short));
        }
        for line in lines {
            if let Some(entry) = self.entries.get_mut(&line.item_id) {
                entry.now.held += line.quantity;
            }
        }
        Ok(())
    }

    /// A held hold's units become sold.
    pub fn confirm(&mut self, lines: &[Line]) -> Result<(), Broken> {
        self.apply(lines, |c, q| {
            c.held -= q;
            c.sold += q;
        })
    }

    /// A held hold's units return to stock (released or expired), or leave with a capacity kept for them.
    pub fn release_held(&mut self, lines: &[Line]) -> Result<(), Broken> {
        self.apply(lines, |c, q| {
            c.held -= q;
            c.follow_asked();
        })
    }

    /// A confirmed hold's units return to stock (a cancelled booking), or leave with a capacity kept for them.
    pub fn release_sold(&mut self, lines: &[Line]) -> Result<(), Broken> {
        self.apply(lines, |c, q| {
            c.sold -= q;
            c.follow_asked();
        })
    }

    fn apply(&mut self, lines: &[Line], change: impl Fn(&mut Counts, i64)) -> Result<(), Broken> {
        let mut next: Vec<(ItemId, Counts)> = Vec::with_capacity(lines.len());
        for line in lines {
            let entry = self.entries.get(&line.item_id).ok_or_else(|| Broken {
                item_id: line.item_id.to_string(),
                what: "a hold line names a bucket that is not loaded",
            })?;
            let mut counts = entry.now;
            change(&mut counts, line.quantity);
            if counts.held < 0 || counts.sold < 0 {
                return Err(Broken {
                    item_id: line.item_id.to_string(),
                    what: "held or sold would go negative",
                });
            }
            next.push((line.item_id.clone(), counts));
        }
        for (item_id, counts) in next {
            if let Some(entry) = self.entries.get_mut(&item_id) {
                entry.now = counts;
            }
        }
        Ok(())
    }

    /// Creates a bucket, or resizes one. Shrinking below what is held plus sold is refused with that amount, unless
    /// `keep_committed`: the capacity is then what those units need, and follows them down to `size` as they are
    /// released (a close-out after sales sells no more, even once a booking is cancelled).
    pub fn resize(
        &mut self,
        item_id: &ItemId,
        mut size: Size,
        organization_id: Option<Uuid>,
        keep_committed: bool,
    ) -> Result<(), i64> {
        match self.entries.get_mut(item_id) {
            Some(entry) => {
                let committed = entry.now.held + entry.now.sold;
                let mut asked = None;
                if committed > size.limit() {
                    if !keep_committed {
                        return Err(committed);
                    }
                    asked = Some(size.capacity);
                    size.capacity = committed - size.overbooking_limit;
                }
                entry.now.size = size;
                entry.now.asked = asked;
            }
            None => {
                let counts = Counts {
                    size,
                    held: 0,
                    sold: 0,
                    asked: None,
                };
                self.entries.insert(
                    item_id.clone(),
                    Entry {
                        organization_id,
                        before: None,
                        now: counts,
                    },
                );
            }
        }
        Ok(())
    }

    /// What to write back: created buckets, and for existing ones the deltas (applied with a guard, so a writer
    /// that somehow raced another cannot push a bucket past its limit).
    pub fn changes(&self) -> Vec<Change> {
        self.entries
            .iter()
            .filter_map(|(item_id, entry)| match entry.before {
                None => Some(Change::Created {
                    bucket: Bucket {
                        item_id: item_id.clone(),
                        organization_id: entry.organization_id,
                        capacity: entry.now.size.capacity,
                        overbooking_limit: entry.now.size.overbooking_limit,
                        held: entry.now.held,
                        sold: entry.now.sold,
                        asked_capacity: None,
                    },
                }),
                Some(before) if before != entry.now => Some(Change::Updated {
                    item_id: item_id.clone(),
                    size: (before.size != entry.now.size).then_some(entry.now.size),
                    held_delta: entry.now.held - before.held,
                    sold_delta: entry.now.sold - before.sold,
                    asked: entry.now.asked,
                }),
                Some(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ItemId {
        ItemId::parse(s).unwrap()
    }

    fn bucket(item: &str, capacity: i64, overbooking_limit: i64, held: i64, sold: i64) -> Bucket {
        Bucket {
            item_id: id(item),
            organization_id: None,
            capacity,
            overbooking_limit,
            held,
            sold,
            asked_capacity: None,
        }
    }

    fn lines(spec: &[(&str, i64)]) -> Vec<Line> {
        spec.iter()
            .map(|(i, q)| Line {
                item_id: id(i),
                quantity: *q,
            })
            .collect()
    }

    /// Buckets, a request, the expected result, and `held` of bucket "a" afterwards.
    type Case = (Vec<Bucket>, Vec<(&'static str, i64)>, Result<(), Refusal>, i64);

    #[test]
    fn reserve_table() {
        let cases: Vec<Case> = vec![
            (vec![bucket("a", 10, 0, 0, 0)], vec![("a", 10)], Ok(()), 10),
            (vec![bucket("a", 10, 0, 4, 5)], vec![("a", 1)], Ok(()), 5),
            (
                vec![bucket("a", 10, 0, 4, 5)],
                vec![("a", 2)],
                Err(Refusal::Insufficient(vec![Shortage {
                    item_id: id("a"),
                    requested: 2,
                    available: 1,
                }])),
                4,
            ),
            (vec![bucket("a", 10, 2, 6, 5)], vec![("a", 1)], Ok(()), 7),
            (
                vec![bucket("a", 10, 0, 0, 0)],
                vec![("a", 1), ("zz", 1)],
                Err(Refusal::UnknownItems(vec![id("zz")])),
                0,
            ),
            // All or nothing: "b" is short, so "a" is not taken either.
            (
                vec![bucket("a", 10, 0, 0, 0), bucket("b", 1, 0, 1, 0)],
                vec![("a", 3), ("b", 1)],
                Err(Refusal::Insufficient(vec![Shortage {
                    item_id: id("b"),
                    requested: 1,
                    available: 0,
                }])),
                0,
            ),
            // Overbooked already (capacity lowered by an operator is refused, but counts may sit at the limit).
            (
                vec![bucket("a", 0, 0, 0, 0)],
                vec![("a", 1)],
                Err(Refusal::Insufficient(vec![Shortage {
                    item_id: id("a"),
                    requested: 1,
                    available: 0,
                }])),
                0,
            ),
        ];
        for (buckets, request, expected, held_after) in cases {
            let mut ledger = Ledger::new(buckets);
            assert_eq!(ledger.reserve(&lines(&request)), expected, "{request:?}");
            assert_eq!(ledger.bucket(&id("a")).unwrap().held, held_after, "{request:?}");
        }
    }

    #[test]
    fn confirm_and_release_move_units_and_never_go_negative() {
        let mut ledger = Ledger::new([bucket("a", 10, 0, 3, 2)]);
        ledger.confirm(&lines(&[("a", 2)])).unwrap();
        assert_eq!(
            (
                ledger.bucket(&id("a")).unwrap().held,
                ledger.bucket(&id("a")).unwrap().sold
            ),
            (1, 4)
        );
        ledger.release_sold(&lines(&[("a", 4)])).unwrap();
        ledger.release_held(&lines(&[("a", 1)])).unwrap();
        let a = ledger.bucket(&id("a")).unwrap();
        assert_eq!((a.held, a.sold), (0, 0));
        assert!(ledger.release_held(&lines(&[("a", 1)])).is_err());
        assert!(ledger.confirm(&lines(&[("missing", 1)])).is_err());
        assert_eq!(
            ledger.bucket(&id("a")).unwrap().held,
            0,
            "a refused change changes nothing"
        );
    }

    #[test]
    fn resize_refuses_below_committed_and_creates_new_buckets() {
        let mut ledger = Ledger::new([bucket("a", 10, 2, 6, 5)]);
        let small = Size {
            capacity: 9,
            overbooking_limit: 1,
        };
        assert_eq!(ledger.resize(&id("a"), small, None, false), Err(11));
        let exact = Size {
            capacity: 11,
            overbooking_limit: 0,
        };
        assert_eq!(ledger.resize(&id("a"), exact, None, false), Ok(()));
        let new = Size {
            capacity: 5,
            overbooking_limit: 0,
        };
        ledger.resize(&id("b"), new, Some(Uuid::nil()), false).unwrap();
        let changes = ledger.changes();
        assert_eq!(changes.len(), 2);
        assert!(
            matches!(&changes[0], Change::Updated { size: Some(s), held_delta: 0, sold_delta: 0, .. } if *s == exact)
        );
        assert!(matches!(&changes[1], Change::Created { bucket } if bucket.capacity == 5));
    }

    #[test]
    fn changes_are_net_deltas() {
        let mut ledger = Ledger::new([bucket("a", 100, 0, 10, 0), bucket("b", 100, 0, 0, 0)]);
        ledger.reserve(&lines(&[("a", 5)])).unwrap();
        ledger.confirm(&lines(&[("a", 3)])).unwrap();
        ledger.release_held(&lines(&[("a", 2)])).unwrap();
        assert_eq!(
            ledger.changes(),
            vec![Change::Updated {
                item_id: id("a"),
                size: None,
                held_delta: 0,
                sold_delta: 3,
                asked: None,
            }]
        );
    }

    /// A close-out after sales keeps the units sold and held, sells no more, and follows them down to what was asked
    /// as they are released, whichever way they go (a cancelled sale, a released or expired hold).
    #[test]
    fn a_capacity_kept_for_committed_units_follows_them_down_to_what_was_asked() {
        let mut ledger = Ledger::new([bucket("a", 10, 1, 2, 3)]);
        let closed = Size {
            capacity: 0,
            overbooking_limit: 1,
        };
        ledger.resize(&id("a"), closed, None, true).unwrap();
        let kept = ledger.bucket(&id("a")).unwrap();
        assert_eq!((kept.capacity, kept.asked_capacity, kept.available()), (4, Some(0), 0));
        assert!(matches!(
            ledger.reserve(&lines(&[("a", 1)])),
            Err(Refusal::Insufficient(_))
        ));

        ledger.release_sold(&lines(&[("a", 2)])).unwrap();
        let fewer = ledger.bucket(&id("a")).unwrap();
        assert_eq!(
            (fewer.capacity, fewer.asked_capacity, fewer.available()),
            (2, Some(0), 0)
        );
        ledger.release_held(&lines(&[("a", 2)])).unwrap();
        let one_left = ledger.bucket(&id("a")).unwrap();
        assert_eq!(
            (one_left.capacity, one_left.asked_capacity),
            (0, None),
            "the overbooking limit covers one sold"
        );
        assert_eq!(one_left.available(), 0);
        ledger.release_sold(&lines(&[("a", 1)])).unwrap();
        let done = ledger.bucket(&id("a")).unwrap();
        assert_eq!((done.capacity, done.asked_capacity, done.available()), (0, None, 1));
        assert!(matches!(
            &ledger.changes()[0],
            Change::Updated { size: Some(s), asked: None, .. } if s.capacity == 0
        ));

        // A resize that fits (or a plain one) asks for nothing more.
        let mut again = Ledger::new([bucket("b", 5, 0, 0, 3)]);
        again
            .resize(
                &id("b"),
                Size {
                    capacity: 1,
                    overbooking_limit: 0,
                },
                None,
                true,
            )
            .unwrap();
        assert_eq!(again.bucket(&id("b")).unwrap().asked_capacity, Some(1));
        again
            .resize(
                &id("b"),
                Size {
                    capacity: 4,
                    overbooking_limit: 0,
                },
                None,
                true,
            )
            .unwrap();
        assert_eq!(again.bucket(&id("b")).unwrap().asked_capacity, None);
    }
}
