use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id of a bucket, chosen by whoever creates it (catalog uses `room:<room type>:<date>`, `fare:<departure>:M`):
/// 1 to 128 characters, starting with a letter or digit, then letters, digits and `. _ : -`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item ids are 1 to 128 characters: a letter or digit, then letters, digits, '.', '_', ':' or '-'")]
pub struct InvalidItemId;

impl ItemId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<ItemId, InvalidItemId> {
        let bytes = raw.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(ItemId(raw.to_owned()))
        } else {
            Err(InvalidItemId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the catalog names this bucket (a room type's night, a departure's cabin or fare): see
    /// [`CATALOG_PREFIXES`].
    pub fn is_catalogs(&self) -> bool {
        CATALOG_PREFIXES.iter().any(|prefix| self.0.starts_with(prefix))
    }
}

/// The prefixes of the ids the catalog gives its buckets (`room:<room type>:<night>`, `seat:<departure>:<cabin>`,
/// `fare:<departure>:<fare>`). Only the catalog creates and resizes those, for the organization that sells the room
/// type or the flight: an operator could otherwise create another supplier's future nights first, and decide their
/// capacity before the supplier prices them.
pub const CATALOG_PREFIXES: &[&str] = &["room:", "seat:", "fare:"];

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A capacity bucket and what is committed against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub item_id: ItemId,
    /// The organization whose operators manage it (none: admins only).
    pub organization_id: Option<Uuid>,
    pub capacity: i64,
    pub overbooking_limit: i64,
    /// Units in holds that are neither confirmed, released nor expired.
    pub held: i64,
    pub sold: i64,
    /// The capacity its manager asked for when more was already held and sold (`keep_committed`): the capacity
    /// keeps those units, sells no more, and comes down to this as they are released. None once it has.
    pub asked_capacity: Option<i64>,
}

impl Bucket {
    /// Units a new hold could take: never negative.
    pub fn available(&self) -> i64 {
        (self.capacity + self.overbooking_limit - self.held - self.sold).max(0)
    }
}

/// A bucket's size as set by its manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub capacity: i64,
    pub overbooking_limit: i64,
}

impl Size {
    /// At most a billion units: far beyond any real flight or hotel, and far from overflowing sums.
    pub const MAX: i64 = 1_000_000_000;

    pub fn parse(capacity: i64, overbooking_limit: i64) -> Result<Size, (&'static str, &'static str)> {
        if !(0..=Self::MAX).contains(&capacity) {
            return Err(("capacity", "must be between 0 and 1000000000"));
        }
        if !(0..=Self::MAX).contains(&overbooking_limit) {
            return Err(("overbooking_limit", "must be between 0 and 1000000000"));
        }
        Ok(Size {
            capacity,
            overbooking_limit,
        })
    }

    pub fn limit(self) -> i64 {
        self.capacity + self.overbooking_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids() {
        for ok in ["a", "room:0193:2026-12-01", "fare:LH400:2026-12-01:M", "X_1.2"] {
            assert!(ItemId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ":a", "a b", "a/b", "ä", &"a".repeat(129)] {
            assert!(ItemId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_catalogs_ids_are_told_by_their_prefix() {
        for catalogs in [
            "room:0193:2026-12-01",
            "seat:PX1-2026-12-01:economy",
            "fare:PX1-2026-12-01:M",
        ] {
            assert!(ItemId::parse(catalogs).unwrap().is_catalogs(), "{catalogs}");
        }
        for others in ["rooms:1", "tour:louvre:2026-12-01", "seat", "Room:1"] {
            assert!(!ItemId::parse(others).unwrap().is_catalogs(), "{others}");
        }
    }

    #[test]
    fn sizes() {
        assert!(Size::parse(0, 0).is_ok());
        assert_eq!(Size::parse(-1, 0).unwrap_err().0, "capacity");
        assert_eq!(Size::parse(5, -1).unwrap_err().0, "overbooking_limit");
        assert_eq!(Size::parse(Size::MAX + 1, 0).unwrap_err().0, "capacity");
    }
}
