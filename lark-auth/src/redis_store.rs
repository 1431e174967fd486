//! [`RedisStore`]: a [`TokenStore`] shared by every instance that points at the same Redis.
//!
//! # What is shared
//!
//! Every instance of a service configured with the same Redis (and the same key prefix) sees the
//! same keys, so they share:
//!
//! - **access tokens**: one instance fetches or refreshes a token and the others read it from
//!   Redis instead of fetching their own; the refresh lock ([`TokenStore::try_lock`]) is a Redis
//!   key too, so each token is refreshed by one instance at a time;
//! - **the `app_ticket`** pushed by the platform to whichever instance receives the event;
//! - **event de-duplication marks**: [`TokenStore::insert_if_absent`] is a single
//!   `SET key value NX PX ms`, so of all instances racing on the same event id exactly one wins.
//!
//! Each entry carries its own expiry (`PX`), so Redis drops expired tokens and marks by itself.
//! Every key is prefixed (`"lark:"` unless configured otherwise), so one Redis can serve other
//! data, or several independent deployments with distinct prefixes.
//!
//! # When Redis is down
//!
//! - [`RedisStore::connect`] fails with a [`StoreError`] within a bounded time (each connection
//!   attempt times out, and the whole call is bounded by the operation timeout); it never hangs.
//! - After connecting, every call is bounded by the operation timeout (5 s unless configured):
//!   if Redis goes away, calls return a [`StoreError`] and the connection is re-established in the
//!   background, so calls succeed again once Redis is back.
//! - Nothing panics, and there is **no silent fallback** to an in-process store: API calls that
//!   need a token fail with a token error of kind `Store` (a [`StoreError`] converts into
//!   `TokenError` and `LarkError`) until Redis answers again. Falling back would split the
//!   instances' tokens, tickets and dedup marks without anyone noticing.
//!
//! # Secrets
//!
//! Stored values (tokens, tickets) never appear in errors or in `Debug` output, and neither does
//! the password of the Redis URL: `Debug` shows only the host, port and database.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, Script, Value};

use crate::store::{LockToken, StoreError, TokenStore};

/// The key prefix used unless configured otherwise.
const DEFAULT_KEY_PREFIX: &str = "lark:";
/// How long one attempt to open a connection may take.
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis may take to answer one command.
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The upper bound on any single store call, reconnecting included.
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a failed connection attempt is retried before the call fails.
const DEFAULT_CONNECT_RETRIES: usize = 2;
/// The first delay between connection attempts; it doubles (with jitter) on each retry.
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between connection attempts.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(1);
/// The longest TTL sent to Redis, in milliseconds; Redis rejects expiries that overflow its clock.
const MAX_TTL_MS: u64 = 1 << 60;

/// Deletes `KEYS[1]` only if it still holds `ARGV[1]`, atomically. Returns the number deleted.
static UNLOCK_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

/// A [`TokenStore`] in Redis, shared by every instance connected to it.
///
/// Instances using the same Redis and key prefix share access tokens (each is refreshed by one
/// instance at a time, under a Redis lock), the `app_ticket`, and event de-duplication marks
/// (`SET NX`: exactly one instance wins each event). Every key is prefixed, `"lark:"` by default.
///
/// Cheap to clone: clones share one multiplexed connection, which reconnects by itself after
/// Redis comes back.
///
/// # When Redis is down
///
/// [`connect`](Self::connect) and every call fail with a [`StoreError`] within the operation
/// timeout (5 s by default; see [`RedisStoreBuilder`]); nothing hangs or panics. There is no
/// silent fallback to an in-process store: API calls that need a token fail with a token error
/// of kind `Store` until Redis answers again.
///
/// Stored values and the URL's password never appear in errors or `Debug` output.
///
/// ```no_run
/// # async fn demo() -> Result<(), lark_auth::StoreError> {
/// use std::time::Duration;
/// use lark_auth::RedisStore;
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379/0")
///     .key_prefix("myapp:lark:")
///     .operation_timeout(Duration::from_secs(3))
///     .connect()
///     .await?;
/// # drop(store);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    key_prefix: Arc<str>,
    /// Host and port (or socket path) and database, when known; never credentials.
    endpoint: Option<Arc<str>>,
    operation_timeout: Duration,
}

impl RedisStore {
    /// Connects to the Redis at `url` with the default settings (see [`RedisStoreBuilder`]).
    ///
    /// The URL has the form `redis://[[user]:password@]host[:port][/db]`, or
    /// `redis+unix:///path/to/socket[?db=N&pass=...]` for a Unix socket.
    ///
    /// Fails within a bounded time if Redis is unreachable or rejects the connection.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        Self::builder(url).connect().await
    }

    /// A builder to configure the key prefix and timeouts before connecting to `url`.
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            info: url.into_connection_info(),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            connect_retries: DEFAULT_CONNECT_RETRIES,
        }
    }

    /// A store on a connection manager configured by the caller, prefixing every key with
    /// `key_prefix`.
    ///
    /// Each call is still bounded by the default operation timeout (5 s); configure the manager's
    /// own connection and response timeouts so that its calls fail sooner.
    pub fn from_connection_manager(conn: ConnectionManager, key_prefix: impl Into<String>) -> RedisStore {
        RedisStore {
            conn,
            key_prefix: key_prefix.into().into(),
            endpoint: None,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// The prefix put before every key.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// Sends `PING`: succeeds if Redis answers within the operation timeout. Useful for readiness
    /// checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.run("PING", async move { redis::cmd("PING").query_async::<()>(&mut conn).await }).await
    }

    fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.key_prefix.len() + key.len());
        full.push_str(&self.key_prefix);
        full.push_str(key);
        full
    }

    /// Runs one Redis call, bounded by the operation timeout, mapping its error.
    async fn run<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = RedisResult<T>> + Send,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.operation_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(redis_error(&format!("redis {op} failed"), e)),
            Err(_) => {
                Err(StoreError::new(format!("redis {op} timed out after {:?}", self.operation_timeout), None))
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.endpoint.as_deref().unwrap_or("<connection manager>"))
            .field("key_prefix", &self.key_prefix)
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.full_key(key);
        // Read bytes, not `String`: a failed conversion inside `redis` would quote the value.
        let bytes =
            self.run("GET", async move {
                redis::cmd("GET").arg(&key).query_async::<Option<Vec<u8>>>(&mut conn).await
            })
            .await?;
        match bytes {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| StoreError::new("redis GET returned a value that is not UTF-8", None)),
        }
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.full_key(key);
        let value = value.to_owned();
        let ms = ttl_millis(ttl);
        self.run("SET", async move {
            redis::cmd("SET").arg(&key).arg(&value).arg("PX").arg(ms).query_async::<()>(&mut conn).await
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.full_key(key);
        self.run("DEL", async move { redis::cmd("DEL").arg(&key).query_async::<()>(&mut conn).await }).await
    }

    async fn insert_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.full_key(key);
        let value = value.to_owned();
        let ms = ttl_millis(ttl);
        let reply = self
            .run("SET NX", async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async::<Value>(&mut conn)
                    .await
            })
            .await?;
        match reply {
            Value::Okay => Ok(true),
            Value::SimpleString(s) if s == "OK" => Ok(true),
            Value::Nil => Ok(false),
            _ => Err(StoreError::new("redis SET NX returned an unexpected reply", None)),
        }
    }

    async fn unlock(&self, key: &str, token: &LockToken) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.full_key(key);
        let token = token.as_str().to_owned();
        self.run("unlock script", async move {
            UNLOCK_SCRIPT.key(&key).arg(&token).invoke_async::<()>(&mut conn).await
        })
        .await
    }
}

/// Configures a [`RedisStore`] before connecting. Made by [`RedisStore::builder`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    /// The parsed URL, or why it did not parse (reported by [`connect`](Self::connect)).
    info: RedisResult<ConnectionInfo>,
    key_prefix: String,
    connection_timeout: Duration,
    response_timeout: Duration,
    operation_timeout: Duration,
    connect_retries: usize,
}

impl RedisStoreBuilder {
    /// The prefix put before every key. Default `"lark:"`. Instances that must share tokens need
    /// the same prefix; unrelated deployments on one Redis should use distinct ones.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one attempt to open a connection may take. Default 2 s.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long Redis may take to answer one command. Default 1 s.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The upper bound on any single call, [`connect`](Self::connect) included, counting the time
    /// spent waiting for a reconnection. Default 5 s.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How many times a failed connection attempt is retried, with a growing delay (100 ms
    /// doubling, at most 1 s), before the call waiting for it fails. Default 2.
    pub fn connect_retries(mut self, retries: usize) -> Self {
        self.connect_retries = retries;
        self
    }

    /// Connects. Fails with a [`StoreError`] if the URL is invalid, or if Redis is unreachable or
    /// rejects the connection (e.g. a wrong password), within the operation timeout.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let info = self.info.map_err(|e| redis_error("invalid redis URL", e))?;
        let endpoint = describe(&info);
        let client = redis::Client::open(info).map_err(|e| redis_error("invalid redis URL", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(self.connect_retries)
            .set_min_delay(RETRY_MIN_DELAY)
            .set_max_delay(RETRY_MAX_DELAY);
        let conn = match tokio::time::timeout(
            self.operation_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(redis_error(&format!("could not connect to redis at {endpoint}"), e)),
            Err(_) => {
                return Err(StoreError::new(
                    format!("could not connect to redis at {endpoint} within {:?}", self.operation_timeout),
                    None,
                ))
            }
        };
        Ok(RedisStore {
            conn,
            key_prefix: self.key_prefix.into(),
            endpoint: Some(endpoint.into()),
            operation_timeout: self.operation_timeout,
        })
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = match &self.info {
            Ok(info) => describe(info),
            Err(_) => "<invalid URL>".to_owned(),
        };
        f.debug_struct("RedisStoreBuilder")
            .field("endpoint", &endpoint)
            .field("key_prefix", &self.key_prefix)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("connect_retries", &self.connect_retries)
            .finish()
    }
}

/// `host:port/db` (or `path/db`): where the store connects, without credentials.
fn describe(info: &ConnectionInfo) -> String {
    format!("{}/{}", info.addr(), info.redis_settings().db())
}

/// A TTL in whole milliseconds for `PX`: at least 1 ms, at most [`MAX_TTL_MS`].
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).clamp(1, MAX_TTL_MS)
}

/// A [`StoreError`] for a failed Redis call, with the Redis error boxed as its source unless it
/// may quote a reply (which could be a stored value).
fn redis_error(message: &str, e: RedisError) -> StoreError {
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            StoreError::new(format!("{message}: unexpected reply from redis"), None)
        }
        _ => StoreError::new(message, Some(Box::new(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_at_least_one_millisecond() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_micros(999)), 1);
        assert_eq!(ttl_millis(Duration::from_millis(50)), 50);
        assert_eq!(ttl_millis(Duration::MAX), MAX_TTL_MS);
    }

    #[test]
    fn builder_debug_hides_credentials() {
        let b = RedisStore::builder("redis://user:hunter2@example.com:6380/3?protocol=resp2");
        let s = format!("{b:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(!s.contains("user"), "{s}");
        assert!(s.contains("example.com:6380/3"), "{s}");
        let s = format!("{:?}", RedisStore::builder("redis+unix:///tmp/r.sock?pass=hunter2"));
        assert!(!s.contains("hunter2"), "{s}");
        let s = format!("{:?}", RedisStore::builder("http://:hunter2@x"));
        assert!(!s.contains("hunter2"), "{s}");
    }

    #[tokio::test]
    async fn invalid_url_fails_without_echoing_it() {
        let e = RedisStore::connect("not a url :hunter2@").await.unwrap_err();
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push_str(&s.to_string());
            source = s.source();
        }
        assert!(!chain.contains("hunter2"), "{chain}");
    }
}
