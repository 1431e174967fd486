//! Reassembly of fragmented messages (`sum > 1`): fragments are collected by `message_id` in
//! `seq` order, within a time limit and a memory bound that counts everything a partial set
//! holds (its fragments, its slot vector, its id and a fixed overhead), and a bound on the number
//! of partial sets.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

/// The most fragments one message may announce.
pub(crate) const MAX_FRAGMENTS: usize = 1024;
/// The most incomplete messages held at once; the oldest is dropped to make room for a new one.
pub(crate) const MAX_PARTIAL_SETS: usize = 1024;
/// The longest `message_id` of a fragmented message, in bytes.
pub(crate) const MAX_MESSAGE_ID: usize = 256;
/// Bytes counted for each partial set besides its fragments, slots and id: its entries in the
/// map and the expiry index and the allocations' headers (an estimate on the high side).
const SET_OVERHEAD: usize = 256;
/// Bytes counted for each slot of a partial set.
const SLOT: usize = std::mem::size_of::<Option<Bytes>>();

/// Why a fragment was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FragmentError {
    /// `sum` or `seq` is out of range.
    BadHeaders,
    /// The `message_id` is missing, empty or longer than [`MAX_MESSAGE_ID`].
    BadMessageId,
    /// `sum` differs from the earlier fragments of the same message.
    SumMismatch,
    /// The whole message would be larger than the per-message limit, or than the fragment
    /// memory bound on its own. Its later fragments are [`AlreadyRefused`](Self::AlreadyRefused).
    TooLarge,
    /// A fragment of a message refused as too large (within the time limit): dropped quietly,
    /// the message was acked already.
    AlreadyRefused,
}

impl FragmentError {
    /// Whether delivering the message again cannot help: the platform would send the same
    /// headers and sizes. A sum mismatch may come from a mix-up of two deliveries; the next one
    /// may be whole.
    /// [`AlreadyRefused`](Self::AlreadyRefused) is neither: that message is dealt with.
    pub(crate) fn is_permanent(self) -> bool {
        matches!(self, FragmentError::BadHeaders | FragmentError::BadMessageId | FragmentError::TooLarge)
    }
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FragmentError::BadHeaders => "fragment with a sum or seq header out of range",
            FragmentError::BadMessageId => "fragment without a usable message_id",
            FragmentError::SumMismatch => "fragment whose sum differs from its message's other fragments",
            FragmentError::TooLarge => "fragmented message larger than the limit",
            FragmentError::AlreadyRefused => "fragment of a message refused as too large",
        })
    }
}

impl std::error::Error for FragmentError {}

struct Partial {
    /// The fragments so far; empty for a refused message.
    parts: Vec<Option<Bytes>>,
    have: usize,
    /// Payload bytes held.
    bytes: usize,
    /// The set's key in the expiry index: its deadline (the time limit from its first
    /// fragment) and its arrival number.
    key: (Instant, u64),
    /// The message was refused as too large: its later fragments are dropped quietly until the
    /// deadline (a tombstone holding no fragments).
    refused: bool,
}

/// What a partial set with `sum` slots and `id` costs besides its payload.
fn fixed_cost(id: &str, sum: usize) -> usize {
    SET_OVERHEAD + id.len() + sum * SLOT
}

/// Collects fragments of one connection.
pub(crate) struct Reassembler {
    partials: HashMap<Arc<str>, Partial>,
    /// The partial sets by deadline, then arrival: the first is the one to expire (or drop)
    /// first.
    order: BTreeMap<(Instant, u64), Arc<str>>,
    arrivals: u64,
    /// Bytes counted across all partial sets (payload and fixed costs).
    held: usize,
    max_held: usize,
    max_message: usize,
    time_limit: Duration,
}

impl Reassembler {
    /// At most `max_held` bytes counted across partial sets (and at most [`MAX_PARTIAL_SETS`]
    /// sets), `max_message` payload bytes per message; a set not complete `time_limit` after
    /// its first fragment is dropped.
    pub(crate) fn new(max_held: usize, max_message: usize, time_limit: Duration) -> Reassembler {
        Reassembler {
            partials: HashMap::new(),
            order: BTreeMap::new(),
            arrivals: 0,
            held: 0,
            max_held,
            max_message,
            time_limit,
        }
    }

    /// Bytes counted for partial sets.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held
    }

    /// Partial sets held.
    #[cfg(test)]
    fn pending(&self) -> usize {
        debug_assert_eq!(self.partials.len(), self.order.len());
        self.partials.len()
    }

    /// Adds fragment `seq` of `sum`; returns the whole message when this completed it.
    pub(crate) fn add(
        &mut self,
        message_id: &str,
        sum: usize,
        seq: usize,
        payload: Bytes,
        now: Instant,
    ) -> Result<Option<Bytes>, FragmentError> {
        self.expire(now);
        if !(2..=MAX_FRAGMENTS).contains(&sum) || seq >= sum {
            return Err(FragmentError::BadHeaders);
        }
        if message_id.is_empty() || message_id.len() > MAX_MESSAGE_ID {
            return Err(FragmentError::BadMessageId);
        }
        let existing = self.partials.get(message_id);
        if existing.is_some_and(|p| p.refused) {
            return Err(FragmentError::AlreadyRefused);
        }
        if existing.is_some_and(|p| p.parts.len() != sum) {
            self.remove(message_id);
            return Err(FragmentError::SumMismatch);
        }
        let replaced = existing.and_then(|p| p.parts[seq].as_ref()).map_or(0, Bytes::len);
        let message_bytes = existing.map_or(0, |p| p.bytes) - replaced + payload.len();
        if message_bytes > self.max_message {
            self.refuse(message_id, now);
            return Err(FragmentError::TooLarge);
        }
        let is_new = existing.is_none();
        let added = payload.len() + if is_new { fixed_cost(message_id, sum) } else { 0 };
        // Make room: drop the oldest other partial sets until this fragment fits.
        while self.held - replaced + added > self.max_held
            || (is_new && self.partials.len() >= MAX_PARTIAL_SETS)
        {
            let oldest = self.order.values().find(|id| &***id != message_id).cloned();
            match oldest {
                Some(id) => {
                    tracing::warn!(message_id = %id, "fragment memory bound reached; dropping an incomplete message");
                    self.remove(&id);
                }
                None => {
                    self.refuse(message_id, now);
                    return Err(FragmentError::TooLarge);
                }
            }
        }
        if is_new {
            let id: Arc<str> = Arc::from(message_id);
            let deadline = now.checked_add(self.time_limit).unwrap_or(now);
            let key = (deadline, self.arrivals);
            self.arrivals += 1;
            self.order.insert(key, id.clone());
            self.partials
                .insert(id, Partial { parts: vec![None; sum], have: 0, bytes: 0, key, refused: false });
            self.held += fixed_cost(message_id, sum);
        }
        let Some(partial) = self.partials.get_mut(message_id) else { return Ok(None) };
        self.held = self.held - replaced + payload.len();
        partial.bytes = message_bytes;
        if partial.parts[seq].replace(payload).is_none() {
            partial.have += 1;
        }
        if partial.have < sum {
            return Ok(None);
        }
        let Some(done) = self.remove(message_id) else { return Ok(None) };
        let mut whole = BytesMut::with_capacity(done.bytes);
        for part in done.parts.into_iter().flatten() {
            whole.extend_from_slice(&part);
        }
        Ok(Some(whole.freeze()))
    }

    /// Drops partial sets past their deadline; returns how many. Takes time in proportion to
    /// the sets dropped, not to the sets held.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        while let Some(entry) = self.order.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            if let Some(p) = self.partials.remove(&*id) {
                self.held -= fixed_cost(&id, p.parts.len()) + p.bytes;
                if !p.refused {
                    tracing::warn!(message_id = %id, "fragments of a message did not all arrive in time; dropped");
                }
            }
            expired += 1;
        }
        expired
    }

    /// Replaces the partial set of `message_id` (if any) with a tombstone until its deadline, so
    /// that the message's later fragments are dropped quietly. Only when there is room: a
    /// tombstone never makes another set go.
    fn refuse(&mut self, message_id: &str, now: Instant) {
        let key = match self.remove(message_id) {
            Some(p) => p.key,
            None => {
                let key = (now.checked_add(self.time_limit).unwrap_or(now), self.arrivals);
                self.arrivals += 1;
                key
            }
        };
        let cost = fixed_cost(message_id, 0);
        if self.held + cost > self.max_held || self.partials.len() >= MAX_PARTIAL_SETS {
            return;
        }
        let id: Arc<str> = Arc::from(message_id);
        self.order.insert(key, id.clone());
        self.partials.insert(id, Partial { parts: Vec::new(), have: 0, bytes: 0, key, refused: true });
        self.held += cost;
    }

    /// Forgets a partial set; returns it.
    fn remove(&mut self, message_id: &str) -> Option<Partial> {
        let p = self.partials.remove(message_id)?;
        self.order.remove(&p.key);
        self.held -= fixed_cost(message_id, p.parts.len()) + p.bytes;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[tokio::test(start_paused = true)]
    async fn reassembles_out_of_order_and_interleaved() {
        let now = Instant::now();
        let mut r = Reassembler::new(1 << 20, 1 << 20, Duration::from_secs(5));
        assert_eq!(r.add("a", 3, 2, b("C"), now), Ok(None));
        assert_eq!(r.add("b", 2, 1, b("y"), now), Ok(None));
        assert_eq!(r.add("a", 3, 0, b("A"), now), Ok(None));
        // A repeated fragment replaces the earlier copy and is not counted twice.
        assert_eq!(r.add("a", 3, 0, b("A"), now), Ok(None));
        assert_eq!(r.add("b", 2, 0, b("x"), now), Ok(Some(b("xy"))));
        assert_eq!(r.add("a", 3, 1, b("B"), now), Ok(Some(b("ABC"))));
        assert_eq!((r.pending(), r.held()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn incomplete_sets_expire() {
        let start = Instant::now();
        let mut r = Reassembler::new(1 << 20, 1 << 20, Duration::from_secs(5));
        assert_eq!(r.add("a", 2, 0, b("A"), start), Ok(None));
        assert_eq!(r.expire(start + Duration::from_millis(4999)), 0);
        assert_eq!(r.expire(start + Duration::from_secs(5)), 1);
        assert_eq!((r.pending(), r.held()), (0, 0));
        // The late fragment starts a new set, which never completes on its own.
        assert_eq!(r.add("a", 2, 1, b("B"), start + Duration::from_secs(6)), Ok(None));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded() {
        let now = Instant::now();
        // Room for two sets of two fragments with 10 payload bytes in all.
        let fixed = fixed_cost("old", 2);
        let mut r = Reassembler::new(2 * fixed + 10, 8, Duration::from_secs(5));
        assert_eq!(r.add("old", 2, 0, b("123456"), now), Ok(None));
        assert_eq!(r.held(), fixed + 6);
        // Needs 6 more bytes: the older set is dropped to make room.
        assert_eq!(r.add("new", 2, 0, b("abcdef"), now + Duration::from_millis(1)), Ok(None));
        assert_eq!((r.pending(), r.held()), (1, fixed + 6));
        assert_eq!(r.add("old", 2, 1, b("7"), now), Ok(None), "the old set starts again");
        assert_eq!((r.pending(), r.held()), (2, 2 * fixed + 7));
        // One message over its own limit is refused: a tombstone takes its place.
        assert_eq!(r.add("new", 2, 1, b("ghi"), now), Err(FragmentError::TooLarge));
        assert_eq!((r.pending(), r.held()), (2, fixed + 1 + fixed_cost("new", 0)));
        // A message that does not fit the bound on its own is refused too.
        let mut small = Reassembler::new(fixed + 2, 100, Duration::from_secs(5));
        assert_eq!(small.add("big", 2, 0, b("abc"), now), Err(FragmentError::TooLarge));
        assert_eq!((small.pending(), small.held()), (1, fixed_cost("big", 0)));
    }

    #[tokio::test(start_paused = true)]
    async fn many_zero_length_fragments_with_distinct_ids_stay_under_the_bound() {
        let now = Instant::now();
        const BOUND: usize = 64 << 10;
        // Each set announces the most fragments: its slots alone take 32 KiB.
        let mut r = Reassembler::new(BOUND, 1 << 20, Duration::from_secs(5));
        for i in 0..10_000 {
            assert_eq!(r.add(&format!("m{i}"), MAX_FRAGMENTS, 0, Bytes::new(), now), Ok(None));
            assert!(r.held() <= BOUND, "{} bytes held", r.held());
        }
        assert!(r.pending() >= 1 && r.pending() * MAX_FRAGMENTS * SLOT <= BOUND, "{}", r.pending());
        // Small sets: the number of sets is bounded too.
        let mut r = Reassembler::new(1 << 30, 1 << 20, Duration::from_secs(5));
        for i in 0..(3 * MAX_PARTIAL_SETS) {
            assert_eq!(r.add(&format!("m{i}"), 2, 0, Bytes::new(), now), Ok(None));
            assert!(r.pending() <= MAX_PARTIAL_SETS);
        }
        assert_eq!(r.pending(), MAX_PARTIAL_SETS);
        assert_eq!(r.held(), MAX_PARTIAL_SETS * fixed_cost("m3000", 2));
        // The oldest were dropped: the newest still complete.
        let last = format!("m{}", 3 * MAX_PARTIAL_SETS - 1);
        assert_eq!(r.add(&last, 2, 1, b("x"), now), Ok(Some(b("x"))));
        assert_eq!(r.add("m0", 2, 1, b("x"), now), Ok(None), "m0 was dropped and starts again");
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_drops_old_sets_in_arrival_order() {
        let start = Instant::now();
        let secs = Duration::from_secs;
        let mut r = Reassembler::new(1 << 20, 1 << 20, secs(5));
        assert_eq!(r.add("a", 2, 0, b("A"), start), Ok(None));
        assert_eq!(r.add("b", 2, 0, b("B"), start + secs(1)), Ok(None));
        assert_eq!(r.add("c", 3, 0, b("C"), start + secs(2)), Ok(None));
        // A completed set leaves nothing behind to expire.
        assert_eq!(r.add("d", 2, 0, b("D"), start + secs(2)), Ok(None));
        assert_eq!(r.add("d", 2, 1, b("d"), start + secs(2)), Ok(Some(b("Dd"))));
        assert_eq!(r.expire(start + secs(4)), 0);
        assert_eq!(r.expire(start + secs(5)), 1, "a");
        assert_eq!(r.pending(), 2);
        // Adding expires too: b goes, c stays.
        assert_eq!(r.add("e", 2, 0, b("E"), start + secs(6)), Ok(None));
        assert_eq!(r.pending(), 2);
        assert_eq!(r.add("c", 3, 1, b("c"), start + secs(6)), Ok(None));
        assert_eq!(r.expire(start + secs(100)), 2, "c and e");
        assert_eq!((r.pending(), r.held()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_later_fragments_of_a_refused_message_are_dropped_quietly_until_its_deadline() {
        let start = Instant::now();
        let secs = Duration::from_secs;
        let mut r = Reassembler::new(1 << 20, 4, secs(5));
        assert_eq!(r.add("big", 4, 0, b("ab"), start), Ok(None));
        assert_eq!(r.add("big", 4, 1, b("cde"), start + secs(1)), Err(FragmentError::TooLarge));
        assert_eq!(r.add("big", 4, 2, b("f"), start + secs(2)), Err(FragmentError::AlreadyRefused));
        assert_eq!(r.add("big", 4, 3, b("g"), start + secs(4)), Err(FragmentError::AlreadyRefused));
        assert_eq!((r.pending(), r.held()), (1, fixed_cost("big", 0)));
        // The deadline of its first fragment ends the tombstone; a new delivery starts afresh.
        assert_eq!(r.expire(start + secs(5)), 1);
        assert_eq!((r.pending(), r.held()), (0, 0));
        assert_eq!(r.add("big", 4, 0, b("ab"), start + secs(6)), Ok(None));
        // A single fragment over the limit is refused at once.
        assert_eq!(r.add("huge", 2, 0, b("12345"), start + secs(6)), Err(FragmentError::TooLarge));
        assert_eq!(r.add("huge", 2, 1, b("6"), start + secs(6)), Err(FragmentError::AlreadyRefused));
        assert!(!FragmentError::AlreadyRefused.is_permanent());
    }

    #[tokio::test(start_paused = true)]
    async fn bad_headers_are_refused() {
        let now = Instant::now();
        let mut r = Reassembler::new(1 << 20, 100, Duration::from_secs(5));
        assert_eq!(r.add("a", 2, 2, b("x"), now), Err(FragmentError::BadHeaders));
        assert_eq!(r.add("a", MAX_FRAGMENTS + 1, 0, b("x"), now), Err(FragmentError::BadHeaders));
        assert_eq!(r.add("a", 1, 0, b("x"), now), Err(FragmentError::BadHeaders));
        assert_eq!(r.add("", 2, 0, b("x"), now), Err(FragmentError::BadMessageId));
        let long = "m".repeat(MAX_MESSAGE_ID + 1);
        assert_eq!(r.add(&long, 2, 0, b("x"), now), Err(FragmentError::BadMessageId));
        assert_eq!(r.add("a", 3, 0, b("x"), now), Ok(None));
        assert_eq!(r.add("a", 2, 1, b("y"), now), Err(FragmentError::SumMismatch));
        assert_eq!((r.pending(), r.held()), (0, 0));
        assert!(FragmentError::BadHeaders.is_permanent() && FragmentError::TooLarge.is_permanent());
        assert!(FragmentError::BadMessageId.is_permanent() && !FragmentError::SumMismatch.is_permanent());
    }
}
