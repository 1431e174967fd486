//! The fake platform's shared state: tokens, counters, recordings, stored files.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use lark_types::codes;
use serde_json::Value;
use tokio::time::Instant;

use crate::body::pattern_buffer;
use crate::fault::{Fault, FaultKind, FaultQueue};
use crate::record::{Endpoint, RecordedRequest, Upload};
use crate::users::Users;
use crate::FakePlatformConfig;

/// How many requests [`State::record`] keeps.
pub(crate) const MAX_RECORDED: usize = 10_000;
/// How much of a request body is recorded.
pub(crate) const MAX_RECORDED_BODY: usize = 1024 * 1024;
/// The tenant of the self-built app.
pub(crate) const SELF_BUILT_TENANT: &str = "tenant_selfbuilt";

/// Locks a mutex, ignoring poisoning (a panicking test must not wedge the server).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a token stands for.
#[derive(Clone, Debug)]
pub(crate) enum TokenKind {
    /// An app access token; `marketplace` when issued by the marketplace endpoint.
    App {
        /// Issued by `/open-apis/auth/v3/app_access_token` rather than `.../internal`.
        marketplace: bool,
    },
    /// A tenant access token for this tenant.
    Tenant(Arc<str>),
}

#[derive(Debug)]
struct TokenInfo {
    kind: TokenKind,
    expires_at: Instant,
}

#[derive(Debug)]
struct Tokens {
    map: HashMap<Box<str>, TokenInfo>,
    prune_at: usize,
}

/// The result of checking a request's `Authorization` header.
#[derive(Clone, Debug)]
pub(crate) enum Auth {
    /// No bearer token.
    Missing,
    /// A valid tenant access token of this tenant.
    Tenant(Arc<str>),
    /// A valid app access token.
    App,
    /// A user access token (any token starting with `u-`).
    User,
    /// An unknown, expired or invalidated token; the code to reply with.
    Invalid(i64),
}

/// A stored upload, for download.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    /// File name to announce in `Content-Disposition`.
    pub(crate) name: Option<String>,
    /// Content type to reply with.
    pub(crate) content_type: Option<String>,
    /// The bytes.
    pub(crate) data: Bytes,
}

/// Everything the server tasks and the [`FakePlatform`](crate::FakePlatform) handle share.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) app_id: String,
    pub(crate) app_secret: String,
    token_ttl_nanos: AtomicU64,
    tokens: RwLock<Tokens>,
    app_ticket: Mutex<Option<String>>,
    hits: [AtomicUsize; 5],
    total: AtomicUsize,
    connections: AtomicUsize,
    /// Bumped to make the open connections close (see `close_connections`).
    close_connections: tokio::sync::watch::Sender<u64>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    faults: Mutex<FaultQueue>,
    fault_count: AtomicUsize,
    sent_messages: Mutex<Vec<Value>>,
    message_chats: Mutex<HashMap<String, String>>,
    uploads: Mutex<Vec<Upload>>,
    blobs: RwLock<HashMap<String, Blob>>,
    pub(crate) users: Users,
    log_prefix: String,
    log_seq: AtomicU64,
    pub(crate) pattern: Bytes,
    /// The long-connection side.
    pub(crate) ws: crate::ws::Hub,
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `n` random lowercase hex digits.
pub(crate) fn random_hex(n: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..n).map(|_| char::from(HEX[fastrand::usize(..16)])).collect()
}

fn random_token(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 40);
    s.push_str(prefix);
    s.extend((0..40).map(|_| fastrand::alphanumeric()));
    s
}

impl State {
    pub(crate) fn new(config: &FakePlatformConfig) -> State {
        State {
            app_id: config.app_id.clone(),
            app_secret: config.app_secret.clone(),
            token_ttl_nanos: AtomicU64::new(duration_nanos(config.token_ttl)),
            tokens: RwLock::new(Tokens { map: HashMap::new(), prune_at: 1024 }),
            app_ticket: Mutex::new(None),
            hits: Default::default(),
            total: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            close_connections: tokio::sync::watch::Sender::new(0),
            requests: Mutex::new(VecDeque::new()),
            faults: Mutex::new(FaultQueue::default()),
            fault_count: AtomicUsize::new(0),
            sent_messages: Mutex::new(Vec::new()),
            message_chats: Mutex::new(HashMap::new()),
            uploads: Mutex::new(Vec::new()),
            blobs: RwLock::new(HashMap::new()),
            users: Users::seed(config.user_count),
            log_prefix: format!("{}{}", "tk", random_hex(12)),
            log_seq: AtomicU64::new(0),
            pattern: pattern_buffer(),
            ws: crate::ws::Hub::new(),
        }
    }

    // ---- tokens -------------------------------------------------------------------------

    pub(crate) fn token_ttl(&self) -> Duration {
        Duration::from_nanos(self.token_ttl_nanos.load(Ordering::Relaxed))
    }

    pub(crate) fn set_token_ttl(&self, ttl: Duration) {
        self.token_ttl_nanos.store(duration_nanos(ttl), Ordering::Relaxed);
    }

    /// Issues a new token of `kind`; returns it and its lifetime in whole seconds.
    pub(crate) fn issue_token(&self, kind: TokenKind) -> (String, u64) {
        let ttl = self.token_ttl();
        let token = random_token(match kind {
            TokenKind::App { .. } => "a-",
            TokenKind::Tenant(_) => "t-",
        });
        let now = Instant::now();
        // Clamped so that absurd TTLs cannot overflow the clock: a century is "forever".
        let info = TokenInfo { kind, expires_at: now + ttl.min(Duration::from_secs(100 * 365 * 86_400)) };
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        if tokens.map.len() >= tokens.prune_at {
            tokens.map.retain(|_, t| t.expires_at > now);
            tokens.prune_at = (tokens.map.len() * 2).max(1024);
        }
        tokens.map.insert(token.clone().into_boxed_str(), info);
        (token, ttl.as_secs())
    }

    /// The kind of `token` if it is known and unexpired.
    pub(crate) fn token_kind(&self, token: &str) -> Option<TokenKind> {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        let info = tokens.map.get(token)?;
        (info.expires_at > Instant::now()).then(|| info.kind.clone())
    }

    pub(crate) fn invalidate_tokens(&self) {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        tokens.map.clear();
        tokens.prune_at = 1024;
    }

    /// Checks the `Authorization: Bearer <token>` header.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Auth {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Auth::Missing;
        };
        let Ok(value) = value.to_str() else {
            return Auth::Invalid(codes::ACCESS_TOKEN_INVALID);
        };
        let token = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => return Auth::Invalid(codes::ACCESS_TOKEN_INVALID),
        };
        if token.is_empty() {
            return Auth::Missing;
        }
        if token.starts_with("u-") {
            return Auth::User;
        }
        match self.token_kind(token) {
            Some(TokenKind::Tenant(tenant)) => Auth::Tenant(tenant),
            Some(TokenKind::App { .. }) => Auth::App,
            None if token.starts_with("t-") => Auth::Invalid(codes::TENANT_ACCESS_TOKEN_INVALID),
            None if token.starts_with("a-") => Auth::Invalid(codes::APP_ACCESS_TOKEN_INVALID),
            None => Auth::Invalid(codes::ACCESS_TOKEN_INVALID),
        }
    }

    pub(crate) fn issue_app_ticket(&self) -> String {
        let ticket = format!("tk-ticket-{}", random_hex(32));
        *lock(&self.app_ticket) = Some(ticket.clone());
        ticket
    }

    pub(crate) fn app_ticket_is_valid(&self, ticket: &str) -> bool {
        lock(&self.app_ticket).as_deref() == Some(ticket) && !ticket.is_empty()
    }

    // ---- counters and recording ---------------------------------------------------------

    pub(crate) fn count_request(&self, path: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if path.starts_with(crate::fault::AUTH_PREFIX) {
            if let Some(e) = Endpoint::from_path(path) {
                self.hits[e.index()].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn hits(&self, endpoint: Endpoint) -> usize {
        self.hits[endpoint.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn total_requests(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts an accepted connection and returns the signal that asks it to close.
    pub(crate) fn count_connection(&self) -> tokio::sync::watch::Receiver<u64> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.close_connections.subscribe()
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Asks every open connection to close: idle ones at once, busy ones after their reply.
    pub(crate) fn close_connections(&self) {
        self.close_connections.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut requests = lock(&self.requests);
        if requests.len() >= MAX_RECORDED {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).iter().cloned().collect()
    }

    pub(crate) fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    /// A fresh, unique log id.
    pub(crate) fn next_log_id(&self) -> String {
        let n = self.log_seq.fetch_add(1, Ordering::Relaxed);
        let mut s = String::with_capacity(self.log_prefix.len() + 16);
        s.push_str(&self.log_prefix);
        let _ = write!(s, "{n:010x}");
        s
    }

    // ---- faults -------------------------------------------------------------------------

    pub(crate) fn inject(&self, fault: Fault) {
        let mut q = lock(&self.faults);
        q.push(fault);
        self.fault_count.store(q.len(), Ordering::Release);
    }

    /// Takes one use of the first queued fault matching `path` (cheap when none are queued).
    pub(crate) fn take_fault(&self, path: &str) -> Option<FaultKind> {
        if self.fault_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = lock(&self.faults);
        let fault = q.take(path);
        self.fault_count.store(q.len(), Ordering::Release);
        fault
    }

    pub(crate) fn pending_faults(&self) -> usize {
        lock(&self.faults).len()
    }

    pub(crate) fn clear_faults(&self) {
        let mut q = lock(&self.faults);
        q.clear();
        self.fault_count.store(0, Ordering::Release);
    }

    // ---- messages and files -------------------------------------------------------------

    pub(crate) fn push_message(&self, message_id: &str, chat_id: &str, record: Value) {
        lock(&self.message_chats).insert(message_id.to_owned(), chat_id.to_owned());
        lock(&self.sent_messages).push(record);
    }

    pub(crate) fn chat_of_message(&self, message_id: &str) -> Option<String> {
        lock(&self.message_chats).get(message_id).cloned()
    }

    pub(crate) fn sent_messages(&self) -> Vec<Value> {
        lock(&self.sent_messages).clone()
    }

    pub(crate) fn push_upload(&self, upload: Upload, key: &str, blob: Blob) {
        self.blobs.write().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), blob);
        lock(&self.uploads).push(upload);
    }

    pub(crate) fn blob(&self, key: &str) -> Option<Blob> {
        self.blobs.read().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    pub(crate) fn uploads(&self) -> Vec<Upload> {
        lock(&self.uploads).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: usize) -> RecordedRequest {
        RecordedRequest {
            method: http::Method::GET,
            path: format!("/{n}"),
            query: None,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            tenant_key: None,
        }
    }

    #[test]
    fn recording_is_bounded() {
        let state = State::new(&FakePlatformConfig::default());
        for n in 0..MAX_RECORDED + 5 {
            state.record(request(n));
        }
        let requests = state.requests();
        assert_eq!(requests.len(), MAX_RECORDED);
        assert_eq!(requests[0].path, "/5");
        assert_eq!(requests[MAX_RECORDED - 1].path, format!("/{}", MAX_RECORDED + 4));
    }

    #[test]
    fn log_ids_are_unique() {
        let state = State::new(&FakePlatformConfig::default());
        assert_ne!(state.next_log_id(), state.next_log_id());
    }
}
