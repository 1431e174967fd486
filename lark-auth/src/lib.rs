//! Access tokens for lark-rs: where they are kept ([`TokenStore`]: [`MemoryStore`] on moka by
//! default, `RedisStore` with feature `redis`), how they are obtained and refreshed
//! ([`TokenManager`]: self-built and marketplace flows, single-flight, refresh margin), and how
//! they reach requests ([`LarkAuthLayer`], a tower layer that works on any HTTP client).

mod clock;
mod layer;
mod manager;
#[cfg(feature = "redis")]
mod redis_store;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use layer::{choose_token, AuthFuture, LarkAuthLayer, LarkAuthService, TokenChoice};
pub use manager::{app_ticket_key, AccessToken, TokenManager, TokenManagerBuilder, APP_TICKET_TTL};
#[cfg(feature = "redis")]
pub use redis_store::{RedisStore, RedisStoreBuilder};
pub use store::{LockAttempt, LockToken, MemoryStore, StoreError, TokenStore};
