//! The [`TokenStore`] trait and the in-process [`MemoryStore`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lark_types::{BoxError, TokenError, TokenErrorKind};

/// A store failed (e.g. Redis unreachable). Never contains stored values.
#[derive(Debug)]
pub struct StoreError {
    message: String,
    source: Option<BoxError>,
}

impl StoreError {
    /// A store error with a message and an optional cause.
    pub fn new(message: impl Into<String>, source: Option<BoxError>) -> Self {
        StoreError { message: message.into(), source }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token store error: {}", self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        TokenError::new(TokenErrorKind::Store).with_source(e)
    }
}

impl From<StoreError> for lark_types::LarkError {
    fn from(e: StoreError) -> Self {
        lark_types::LarkError::Token(e.into())
    }
}

/// Proof of holding a store lock, needed to release it.
#[derive(Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl LockToken {
    /// A fresh random lock token.
    pub fn random() -> Self {
        LockToken(format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)))
    }

    /// The token's value, as written to the store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockToken(..)")
    }
}

/// The outcome of [`TokenStore::try_lock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// This caller holds the lock until it calls [`TokenStore::unlock`] or the TTL passes.
    Acquired(LockToken),
    /// Someone else holds it.
    Held,
}

/// Where tokens, app_tickets and event-dedup marks live.
///
/// A store only stores: string values under string keys with a TTL. The token manager decides
/// what to keep. [`MemoryStore`] serves one process; a shared store (Redis) serves many instances,
/// which then share tokens, the app_ticket and dedup marks, and refresh each token once.
///
/// Implementations must not print stored values in `Debug` or errors: they are secrets.
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug + 'static {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Stores `value` under `key` for `ttl`.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Removes `key`.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Stores `value` under `key` for `ttl` only if `key` is absent. Returns whether it stored.
    /// Must be atomic: of concurrent callers, exactly one gets `true`.
    async fn insert_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Tries to take a lock named `key` for at most `ttl`. The default builds it on
    /// [`insert_if_absent`](Self::insert_if_absent).
    async fn try_lock(&self, key: &str, ttl: Duration) -> Result<LockAttempt, StoreError> {
        let token = LockToken::random();
        if self.insert_if_absent(key, token.as_str(), ttl).await? {
            Ok(LockAttempt::Acquired(token))
        } else {
            Ok(LockAttempt::Held)
        }
    }

    /// Releases a lock taken with [`try_lock`](Self::try_lock), if still held by `token`.
    /// The default compares then deletes; stores with atomic compare-and-delete should override.
    async fn unlock(&self, key: &str, token: &LockToken) -> Result<(), StoreError> {
        if self.get(key).await?.as_deref() == Some(token.as_str()) {
            self.delete(key).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        (**self).get(key).await
    }
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        (**self).set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
    async fn insert_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        (**self).insert_if_absent(key, value, ttl).await
    }
    async fn try_lock(&self, key: &str, ttl: Duration) -> Result<LockAttempt, StoreError> {
        (**self).try_lock(key, ttl).await
    }
    async fn unlock(&self, key: &str, token: &LockToken) -> Result<(), StoreError> {
        (**self).unlock(key, token).await
    }
}

#[derive(Clone)]
struct Entry {
    value: Arc<str>,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The default, in-process store on a moka cache with a TTL per entry.
///
/// Cheap to clone: clones share the cache, so several `Client`s in one process can share tokens.
#[derive(Clone)]
pub struct MemoryStore {
    cache: moka::future::Cache<String, Entry>,
}

impl MemoryStore {
    /// A store holding at most 100,000 entries.
    pub fn new() -> Self {
        Self::with_capacity(100_000)
    }

    /// A store holding at most `max_entries` entries.
    pub fn with_capacity(max_entries: u64) -> Self {
        MemoryStore {
            cache: moka::future::Cache::builder().max_capacity(max_entries).expire_after(PerEntryTtl).build(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").field("entries", &self.cache.entry_count()).finish()
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.cache.get(key).await.map(|e| e.value.to_string()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.cache.insert(key.to_owned(), Entry { value: value.into(), ttl }).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.cache.invalidate(key).await;
        Ok(())
    }

    async fn insert_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let entry = self
            .cache
            .entry(key.to_owned())
            .or_insert_with(async { Entry { value: value.into(), ttl } })
            .await;
        Ok(entry.is_fresh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_basics() {
        let s = MemoryStore::new();
        assert_eq!(s.get("k").await.unwrap(), None);
        s.set("k", "v", Duration::from_secs(60)).await.unwrap();
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some("v"));
        assert!(!s.insert_if_absent("k", "w", Duration::from_secs(60)).await.unwrap());
        s.delete("k").await.unwrap();
        assert!(s.insert_if_absent("k", "w", Duration::from_secs(60)).await.unwrap());
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some("w"));
        assert!(!format!("{s:?}").contains('w'));
    }

    #[tokio::test]
    async fn insert_if_absent_has_one_winner() {
        let s = MemoryStore::new();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.insert_if_absent("dedup", &i.to_string(), Duration::from_secs(60)).await.unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn default_lock_excludes_and_releases() {
        let s = MemoryStore::new();
        let LockAttempt::Acquired(tok) = s.try_lock("l", Duration::from_secs(5)).await.unwrap() else {
            panic!("first lock must succeed")
        };
        assert_eq!(s.try_lock("l", Duration::from_secs(5)).await.unwrap(), LockAttempt::Held);
        s.unlock("l", &LockToken::random()).await.unwrap();
        assert_eq!(s.try_lock("l", Duration::from_secs(5)).await.unwrap(), LockAttempt::Held);
        s.unlock("l", &tok).await.unwrap();
        assert!(matches!(s.try_lock("l", Duration::from_secs(5)).await.unwrap(), LockAttempt::Acquired(_)));
    }
}
