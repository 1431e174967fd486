//! Reassembly of fragmented messages (`sum > 1`): fragments are collected by `message_id` in
//! `seq` order, within a time limit and a memory bound.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

/// The most fragments one message may announce.
pub(crate) const MAX_FRAGMENTS: usize = 1024;

/// Why a fragment was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FragmentError {
    /// `sum` or `seq` is missing, not a number, or out of range.
    BadHeaders,
    /// `sum` differs from the earlier fragments of the same message.
    SumMismatch,
    /// The whole message would be larger than the per-message limit.
    TooLarge,
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FragmentError::BadHeaders => "fragment with a bad sum or seq header",
            FragmentError::SumMismatch => "fragment whose sum differs from its message's other fragments",
            FragmentError::TooLarge => "fragmented message larger than the limit",
        })
    }
}

impl std::error::Error for FragmentError {}

struct Partial {
    parts: Vec<Option<Bytes>>,
    have: usize,
    bytes: usize,
    /// The partial set is dropped at this time (time limit from its first fragment).
    deadline: Instant,
}

/// Collects fragments of one connection.
pub(crate) struct Reassembler {
    partials: HashMap<String, Partial>,
    /// Bytes held across all partial sets.
    held: usize,
    max_held: usize,
    max_message: usize,
    time_limit: Duration,
}

impl Reassembler {
    /// At most `max_held` bytes held across partial sets, `max_message` per message; a set
    /// not complete `time_limit` after its first fragment is dropped.
    pub(crate) fn new(max_held: usize, max_message: usize, time_limit: Duration) -> Reassembler {
        Reassembler { partials: HashMap::new(), held: 0, max_held, max_message, time_limit }
    }

    /// Bytes held in partial sets.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held
    }

    /// Partial sets held.
    #[cfg(test)]
    fn pending(&self) -> usize {
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
        if let Some(p) = self.partials.get(message_id) {
            if p.parts.len() != sum {
                self.remove(message_id);
                return Err(FragmentError::SumMismatch);
            }
        }
        let replaced =
            self.partials.get(message_id).and_then(|p| p.parts[seq].as_ref()).map_or(0, Bytes::len);
        let message_bytes = self.partials.get(message_id).map_or(0, |p| p.bytes) - replaced + payload.len();
        if message_bytes > self.max_message {
            self.remove(message_id);
            return Err(FragmentError::TooLarge);
        }
        // Make room: drop the oldest other partial sets until this fragment fits.
        while self.held - replaced + payload.len() > self.max_held {
            let oldest = self
                .partials
                .iter()
                .filter(|(id, _)| id.as_str() != message_id)
                .min_by_key(|(_, p)| p.deadline)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => {
                    tracing::warn!(message_id = %id, "fragment memory bound reached; dropping an incomplete message");
                    self.remove(&id);
                }
                None => {
                    self.remove(message_id);
                    return Err(FragmentError::TooLarge);
                }
            }
        }
        let deadline = now + self.time_limit;
        let partial = self.partials.entry(message_id.to_owned()).or_insert_with(|| Partial {
            parts: vec![None; sum],
            have: 0,
            bytes: 0,
            deadline,
        });
        self.held = self.held - replaced + payload.len();
        partial.bytes = message_bytes;
        if partial.parts[seq].replace(payload).is_none() {
            partial.have += 1;
        }
        if partial.have < sum {
            return Ok(None);
        }
        let Some(done) = self.partials.remove(message_id) else { return Ok(None) };
        self.held -= done.bytes;
        let mut whole = BytesMut::with_capacity(done.bytes);
        for part in done.parts.into_iter().flatten() {
            whole.extend_from_slice(&part);
        }
        Ok(Some(whole.freeze()))
    }

    /// Drops partial sets past their deadline; returns how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let expired: Vec<String> =
            self.partials.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| id.clone()).collect();
        for id in &expired {
            tracing::warn!(message_id = %id, "fragments of a message did not all arrive in time; dropped");
            self.remove(id);
        }
        expired.len()
    }

    fn remove(&mut self, message_id: &str) {
        if let Some(p) = self.partials.remove(message_id) {
            self.held -= p.bytes;
        }
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
        let mut r = Reassembler::new(10, 8, Duration::from_secs(5));
        assert_eq!(r.add("old", 2, 0, b("123456"), now), Ok(None));
        // Needs 6 more bytes: the older set is dropped to make room.
        assert_eq!(r.add("new", 2, 0, b("abcdef"), now + Duration::from_millis(1)), Ok(None));
        assert_eq!((r.pending(), r.held()), (1, 6));
        assert_eq!(r.add("old", 2, 1, b("7"), now), Ok(None), "the old set starts again");
        // One message over its own limit is refused.
        assert_eq!(r.add("new", 2, 1, b("ghi"), now), Err(FragmentError::TooLarge));
        assert_eq!((r.pending(), r.held()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn bad_headers_are_refused() {
        let now = Instant::now();
        let mut r = Reassembler::new(100, 100, Duration::from_secs(5));
        assert_eq!(r.add("a", 2, 2, b("x"), now), Err(FragmentError::BadHeaders));
        assert_eq!(r.add("a", MAX_FRAGMENTS + 1, 0, b("x"), now), Err(FragmentError::BadHeaders));
        assert_eq!(r.add("a", 1, 0, b("x"), now), Err(FragmentError::BadHeaders));
        assert_eq!(r.add("a", 3, 0, b("x"), now), Ok(None));
        assert_eq!(r.add("a", 2, 1, b("y"), now), Err(FragmentError::SumMismatch));
        assert_eq!((r.pending(), r.held()), (0, 0));
    }
}
