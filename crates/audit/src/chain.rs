//! The hash chain of audit entries: what is hashed, how, and what a walk of the chain finds.
//!
//! Each entry's hash is SHA-256 over an unambiguous encoding of every field of the entry and the previous entry's
//! hash, so editing any field of any entry, removing an entry, or reordering entries changes a hash that later
//! entries (and the head) have fixed. Pure functions only; the walk over the database is in `store.rs`.

use std::fmt;

use aws_lc_rs::digest::{Context, SHA256};
use phoenix_db::Timestamp;
use uuid::Uuid;

/// The `prev_hash` of the first entry, and the head's hash while the log is empty.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Names the encoding, so a future change of it cannot collide with this one.
const DOMAIN: &[u8] = b"phoenix-audit-entry-v1";

/// One entry of the audit log, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1, 2, 3, ... without gaps.
    pub position: i64,
    pub event_id: Uuid,
    pub actor: String,
    /// The event type (`booking.confirmed.v1`).
    pub action: String,
    pub subject: String,
    /// The service that wrote the event (`phoenix.booking`).
    pub source: String,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub correlation_id: Option<String>,
    /// The masked payload: exactly the JSON text that was hashed.
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Entry {
    /// The hash this entry should have: SHA-256 over its fields and `prev_hash`, as lowercase hex.
    pub fn compute_hash(&self) -> String {
        let mut ctx = Context::new(&SHA256);
        bytes(&mut ctx, DOMAIN);
        ctx.update(&self.position.to_be_bytes());
        ctx.update(self.event_id.as_bytes());
        bytes(&mut ctx, self.actor.as_bytes());
        bytes(&mut ctx, self.action.as_bytes());
        bytes(&mut ctx, self.subject.as_bytes());
        bytes(&mut ctx, self.source.as_bytes());
        ctx.update(&self.occurred_at.unix_micros().to_be_bytes());
        ctx.update(&self.recorded_at.unix_micros().to_be_bytes());
        match &self.correlation_id {
            None => ctx.update(&[0]),
            Some(id) => {
                ctx.update(&[1]);
                bytes(&mut ctx, id.as_bytes());
            }
        }
        bytes(&mut ctx, self.payload.as_bytes());
        bytes(&mut ctx, self.prev_hash.as_bytes());
        hex(ctx.finish().as_ref())
    }
}

/// A variable-length field: its length (8 bytes, big-endian), then its bytes, so no two field lists encode alike.
fn bytes(ctx: &mut Context, field: &[u8]) {
    ctx.update(&(field.len() as u64).to_be_bytes());
    ctx.update(field);
}

fn hex(digest: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

/// What [`crate::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every entry up to the head hashes as recorded and links to the one before it.
    Intact {
        /// Entries checked (the head's position).
        entries: u64,
        /// The head's hash: publish it elsewhere to detect a rewrite of the whole log later.
        head_hash: String,
    },
    /// The first position at which the chain is broken, and why.
    Broken { position: i64, reason: Break },
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        matches!(self, Verification::Intact { .. })
    }
}

/// Why the chain is broken at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The entry's fields do not hash to its recorded hash: it was edited.
    HashMismatch,
    /// The entry at this position is missing (the next one found is at `found`): it was deleted.
    Missing { found: i64 },
    /// The entry's `prev_hash` is not the hash of the entry before it: an entry before it was replaced, or the
    /// entries were rewritten from here.
    PrevHashMismatch,
    /// The head says the log is longer than the entries found: the last entries were deleted.
    Truncated { head_position: i64, last_position: i64 },
    /// The last entry is where the head says, but its hash is not the head's.
    HeadHashMismatch,
    /// The entry hashes as recorded but not as an anchor taken earlier says: the log was rewritten from here on,
    /// every hash recomputed.
    AnchorMismatch { anchored_hash: String },
    /// An anchor taken earlier is beyond the head: entries were deleted at the end and the head moved back.
    AnchorBeyondHead { head_position: i64 },
}

/// A position and the hash its entry had, recorded outside the database (`<position>:<hash>`, as `verify` prints
/// it). A later walk checks the entry there still has that hash, which no rewrite inside the database can fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub position: i64,
    pub hash: String,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.position, self.hash)
    }
}

impl std::str::FromStr for Anchor {
    type Err = String;

    fn from_str(s: &str) -> Result<Anchor, String> {
        let bad = || format!("{s:?} is not an anchor: expected <position>:<64 hex digits>, as verify prints it");
        let (position, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let position: i64 = position.parse().map_err(|_| bad())?;
        let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if position < 1 || !hex {
            return Err(bad());
        }
        Ok(Anchor {
            position,
            hash: hash.to_owned(),
        })
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verification::Intact { entries, head_hash } => {
                write!(f, "audit log intact: {entries} entries checked, head hash {head_hash}")?;
                if *entries > 0 {
                    // What to keep elsewhere and pass back with --anchor.
                    write!(f, "\nanchor: {entries}:{head_hash}")?;
                }
                Ok(())
            }
            Verification::Broken { position, reason } => {
                write!(f, "audit log broken at position {position}: {reason}")
            }
        }
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Break::HashMismatch => f.write_str("the entry does not match its hash (edited)"),
            Break::Missing { found } => write!(f, "the entry is missing, the next one is at {found} (deleted)"),
            Break::PrevHashMismatch => f.write_str("prev_hash does not match the previous entry's hash"),
            Break::Truncated {
                head_position,
                last_position,
            } => write!(
                f,
                "the head is at {head_position} but the last entry is at {last_position} (entries deleted at the end)"
            ),
            Break::HeadHashMismatch => f.write_str("the last entry's hash is not the head's hash"),
            Break::AnchorMismatch { anchored_hash } => write!(
                f,
                "the entry hashes to its record but was anchored as {anchored_hash} (rewritten from here on)"
            ),
            Break::AnchorBeyondHead { head_position } => write!(
                f,
                "an anchor was taken here but the head is at {head_position} (entries deleted at the end, head moved back)"
            ),
        }
    }
}

/// Walks the chain page by page: [`Walk::check`] each entry in position order, then [`Walk::finish`] against the
/// head that was read before the walk began (entries after it are not looked at).
#[derive(Debug)]
pub struct Walk {
    expected: i64,
    prev_hash: String,
    /// Anchors not reached yet, the nearest last.
    anchors: Vec<Anchor>,
}

impl Default for Walk {
    fn default() -> Self {
        Walk::anchored(Vec::new())
    }
}

impl Walk {
    /// A walk that also checks each entry at an anchor's position against the anchor's hash.
    pub fn anchored(mut anchors: Vec<Anchor>) -> Walk {
        anchors.sort_by_key(|anchor| std::cmp::Reverse(anchor.position));
        Walk {
            expected: 1,
            prev_hash: GENESIS.to_owned(),
            anchors,
        }
    }

    /// The position of the last entry checked (0 before any).
    pub fn last_position(&self) -> i64 {
        self.expected - 1
    }

    pub fn check(&mut self, entry: &Entry) -> Result<(), Verification> {
        let broken = |reason| Verification::Broken {
            position: self.expected,
            reason,
        };
        if entry.position != self.expected {
            return Err(broken(Break::Missing { found: entry.position }));
        }
        if entry.prev_hash != self.prev_hash {
            return Err(broken(Break::PrevHashMismatch));
        }
        if entry.compute_hash() != entry.hash {
            return Err(broken(Break::HashMismatch));
        }
        while self
            .anchors
            .last()
            .is_some_and(|anchor| anchor.position == entry.position)
        {
            if let Some(anchor) = self.anchors.pop()
                && anchor.hash != entry.hash
            {
                return Err(broken(Break::AnchorMismatch {
                    anchored_hash: anchor.hash,
                }));
            }
        }
        self.expected += 1;
        self.prev_hash.clone_from(&entry.hash);
        Ok(())
    }

    pub fn finish(self, head_position: i64, head_hash: &str) -> Verification {
        let last_position = self.last_position();
        if last_position < head_position {
            return Verification::Broken {
                position: last_position + 1,
                reason: Break::Truncated {
                    head_position,
                    last_position,
                },
            };
        }
        if self.prev_hash != head_hash {
            return Verification::Broken {
                position: last_position,
                reason: Break::HeadHashMismatch,
            };
        }
        // Anchors left were beyond every entry the walk reached: the head.
        if let Some(anchor) = self.anchors.last() {
            return Verification::Broken {
                position: anchor.position,
                reason: Break::AnchorBeyondHead { head_position },
            };
        }
        Verification::Intact {
            entries: u64::try_from(last_position).unwrap_or(0),
            head_hash: self.prev_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(position: i64, prev_hash: &str) -> Entry {
        let mut entry = Entry {
            position,
            event_id: Uuid::from_u128(position as u128),
            actor: "user-1".into(),
            action: "booking.confirmed.v1".into(),
            subject: "b-1".into(),
            source: "phoenix.booking".into(),
            occurred_at: Timestamp::from_unix_micros(1_000),
            recorded_at: Timestamp::from_unix_micros(2_000),
            correlation_id: None,
            payload: "{}".into(),
            prev_hash: prev_hash.into(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        entry
    }

    fn chain(n: i64) -> Vec<Entry> {
        let mut entries: Vec<Entry> = Vec::new();
        for position in 1..=n {
            let prev = entries.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
            entries.push(entry(position, &prev));
        }
        entries
    }

    fn walk(entries: &[Entry], head: (i64, &str)) -> Verification {
        let mut walk = Walk::default();
        for entry in entries {
            if let Err(broken) = walk.check(entry) {
                return broken;
            }
        }
        walk.finish(head.0, head.1)
    }

    #[test]
    fn the_encoding_separates_fields() {
        // Moving a character from one field to the next must change the hash.
        let a = entry(1, GENESIS);
        let mut b = a.clone();
        b.actor = "user-1b".into();
        b.action = "ooking.confirmed.v1".into();
        assert_ne!(a.compute_hash(), b.compute_hash());
        let mut c = a.clone();
        c.correlation_id = Some(String::new());
        assert_ne!(a.compute_hash(), c.compute_hash(), "absent is not empty");
        assert_eq!(a.hash.len(), 64);
    }

    #[test]
    fn a_walk_names_the_first_break() {
        let entries = chain(4);
        let head = entries[3].hash.clone();
        assert!(walk(&entries, (4, &head)).is_intact());
        assert_eq!(
            walk(&[], (0, GENESIS)).to_string().split(':').next(),
            Some("audit log intact")
        );

        let mut edited = entries.clone();
        edited[1].payload = "{\"x\":1}".into();
        assert_eq!(
            walk(&edited, (4, &head)),
            Verification::Broken {
                position: 2,
                reason: Break::HashMismatch
            }
        );
        let rehashed = {
            let mut e = edited.clone();
            e[1].hash = e[1].compute_hash();
            e
        };
        assert_eq!(
            walk(&rehashed, (4, &head)),
            Verification::Broken {
                position: 3,
                reason: Break::PrevHashMismatch
            }
        );
        let gap = [entries[0].clone(), entries[2].clone(), entries[3].clone()];
        assert_eq!(
            walk(&gap, (4, &head)),
            Verification::Broken {
                position: 2,
                reason: Break::Missing { found: 3 }
            }
        );
        assert_eq!(
            walk(&entries[..3], (4, &head)),
            Verification::Broken {
                position: 4,
                reason: Break::Truncated {
                    head_position: 4,
                    last_position: 3
                }
            }
        );
        assert_eq!(
            walk(&entries, (4, GENESIS)),
            Verification::Broken {
                position: 4,
                reason: Break::HeadHashMismatch
            }
        );
    }

    /// Walks `entries` against anchors, the head being the last entry.
    fn anchored_walk(entries: &[Entry], anchors: Vec<Anchor>) -> Verification {
        let mut walk = Walk::anchored(anchors);
        for entry in entries {
            if let Err(broken) = walk.check(entry) {
                return broken;
            }
        }
        let head = entries.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
        walk.finish(entries.len() as i64, &head)
    }

    #[test]
    fn anchors_parse_as_verify_prints_them_and_nothing_else() {
        let hash = "ab".repeat(32);
        let anchor: Anchor = format!("12:{hash}").parse().unwrap();
        assert_eq!(
            anchor,
            Anchor {
                position: 12,
                hash: hash.clone()
            }
        );
        assert_eq!(anchor.to_string(), format!("12:{hash}"));
        for bad in [
            format!("0:{hash}"),
            format!("-1:{hash}"),
            format!("x:{hash}"),
            format!("12:{}", &hash[..62]),
            format!("12:{}", hash.to_uppercase()),
            hash.clone(),
            String::new(),
        ] {
            assert!(bad.parse::<Anchor>().is_err(), "{bad:?}");
        }
        let printed = Verification::Intact {
            entries: 12,
            head_hash: hash.clone(),
        }
        .to_string();
        let line = printed.lines().find_map(|l| l.strip_prefix("anchor: ")).unwrap();
        assert_eq!(line.parse::<Anchor>().unwrap(), anchor);
    }

    #[test]
    fn an_anchor_catches_a_rewrite_with_every_hash_recomputed() {
        let original = chain(5);
        let anchors = vec![Anchor {
            position: 5,
            hash: original[4].hash.clone(),
        }];
        assert!(anchored_walk(&original, anchors.clone()).is_intact());

        // Entry 3 changed and every hash from it on recomputed: consistent inside, unlike the anchor.
        let mut rewritten = original[..2].to_vec();
        for position in 3..=5 {
            let mut e = entry(position, &rewritten.last().unwrap().hash);
            if position == 3 {
                e.payload = "{\"total_minor\":1}".into();
                e.hash = e.compute_hash();
            }
            rewritten.push(e);
        }
        assert!(
            anchored_walk(&rewritten, Vec::new()).is_intact(),
            "no check inside the log can see it"
        );
        assert_eq!(
            anchored_walk(&rewritten, anchors),
            Verification::Broken {
                position: 5,
                reason: Break::AnchorMismatch {
                    anchored_hash: original[4].hash.clone()
                }
            }
        );
    }

    #[test]
    fn an_anchor_beyond_the_head_means_the_end_was_cut_off() {
        let original = chain(5);
        let anchors = vec![
            Anchor {
                position: 2,
                hash: original[1].hash.clone(),
            },
            Anchor {
                position: 5,
                hash: original[4].hash.clone(),
            },
        ];
        assert!(anchored_walk(&original[..3], Vec::new()).is_intact());
        assert_eq!(
            anchored_walk(&original[..3], anchors),
            Verification::Broken {
                position: 5,
                reason: Break::AnchorBeyondHead { head_position: 3 }
            }
        );
    }
}
