//! `RedisStore` against a real `redis-server` (skipped when it is not installed, unless
//! `LARK_REQUIRE_REDIS=1`).

use std::error::Error as _;
use std::time::{Duration, Instant};

use lark_auth::{LockAttempt, LockToken, RedisStore, StoreError, TokenStore};
use lark_testkit::redis_server::{free_port, RedisServer};

/// The bound every test puts on calls that must fail rather than hang.
const BOUND: Duration = Duration::from_secs(10);

/// Starts a server, or returns from the test (skipped) if `redis-server` is not installed.
macro_rules! redis_server {
    () => {
        match RedisServer::start() {
            Some(server) => server,
            None => return,
        }
    };
    ($($arg:expr),+ $(,)?) => {
        match RedisServer::start_with_args(&[$($arg),+]) {
            Some(server) => server,
            None => return,
        }
    };
}

/// A plain connection to check what the store wrote.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw redis connection")
}

async fn raw_get(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(conn).await.expect("raw GET")
}

async fn raw_pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.expect("raw PTTL")
}

/// The error and all its sources, as one string.
fn chain(e: &StoreError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(" <- ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[tokio::test]
async fn get_set_delete_round_trip() {
    let server = redis_server!();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut raw = raw(&server.url()).await;

    assert_eq!(store.get("tok").await.unwrap(), None);
    store.set("tok", "t-secret", Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.get("tok").await.unwrap().as_deref(), Some("t-secret"));
    let pttl = raw_pttl(&mut raw, "lark:tok").await;
    assert!((59_000..=60_000).contains(&pttl), "PTTL {pttl}");

    // Overwriting replaces the value and the TTL.
    store.set("tok", "t-other", Duration::from_secs(5)).await.unwrap();
    assert_eq!(store.get("tok").await.unwrap().as_deref(), Some("t-other"));
    let pttl = raw_pttl(&mut raw, "lark:tok").await;
    assert!((4_000..=5_000).contains(&pttl), "PTTL {pttl}");

    store.delete("tok").await.unwrap();
    assert_eq!(store.get("tok").await.unwrap(), None);
    // Deleting a missing key is fine.
    store.delete("tok").await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let server = redis_server!();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut raw = raw(&server.url()).await;

    store.set("short", "v", Duration::from_millis(50)).await.unwrap();
    let pttl = raw_pttl(&mut raw, "lark:short").await;
    assert!((1..=50).contains(&pttl), "PTTL {pttl}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while store.get("short").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "key did not expire");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A TTL under 1 ms is sent as 1 ms, never as 0 (which Redis would reject).
    store.set("tiny", "v", Duration::from_micros(10)).await.unwrap();
    assert!(store.insert_if_absent("tiny2", "v", Duration::ZERO).await.unwrap());
    assert!(raw_pttl(&mut raw, "lark:tiny2").await <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_if_absent_has_exactly_one_winner() {
    let server = redis_server!();
    let store = RedisStore::connect(&server.url()).await.unwrap();

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let won = store
                    .insert_if_absent("dedup:evt-1", &format!("v{i}"), Duration::from_secs(60))
                    .await
                    .unwrap();
                (i, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (i, won) = task.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = store.get("dedup:evt-1").await.unwrap();
    assert_eq!(stored, Some(format!("v{}", winners[0])));
    let mut raw = raw(&server.url()).await;
    let pttl = raw_pttl(&mut raw, "lark:dedup:evt-1").await;
    assert!((59_000..=60_000).contains(&pttl), "PTTL {pttl}");
}

#[tokio::test]
async fn lock_excludes_and_only_its_token_releases_it() {
    let server = redis_server!();
    let store = RedisStore::connect(&server.url()).await.unwrap();

    let LockAttempt::Acquired(token) = store.try_lock("lock:t", Duration::from_secs(5)).await.unwrap() else {
        panic!("the first lock must be acquired")
    };
    assert_eq!(store.try_lock("lock:t", Duration::from_secs(5)).await.unwrap(), LockAttempt::Held);

    store.unlock("lock:t", &LockToken::random()).await.unwrap();
    assert_eq!(store.try_lock("lock:t", Duration::from_secs(5)).await.unwrap(), LockAttempt::Held);

    store.unlock("lock:t", &token).await.unwrap();
    assert!(matches!(
        store.try_lock("lock:t", Duration::from_secs(5)).await.unwrap(),
        LockAttempt::Acquired(_)
    ));

    // Unlocking a lock nobody holds is a no-op.
    store.unlock("lock:none", &token).await.unwrap();
}

#[tokio::test]
async fn keys_are_prefixed() {
    let server = redis_server!();
    let mut raw = raw(&server.url()).await;

    let default = RedisStore::connect(&server.url()).await.unwrap();
    assert_eq!(default.key_prefix(), "lark:");
    default.set("k", "default", Duration::from_secs(60)).await.unwrap();

    let custom = RedisStore::builder(&server.url()).key_prefix("app1:").connect().await.unwrap();
    assert_eq!(custom.key_prefix(), "app1:");
    custom.set("k", "custom", Duration::from_secs(60)).await.unwrap();
    assert!(custom.insert_if_absent("m", "mark", Duration::from_secs(60)).await.unwrap());

    assert_eq!(raw_get(&mut raw, "lark:k").await.as_deref(), Some("default"));
    assert_eq!(raw_get(&mut raw, "app1:k").await.as_deref(), Some("custom"));
    assert_eq!(raw_get(&mut raw, "app1:m").await.as_deref(), Some("mark"));
    assert_eq!(raw_get(&mut raw, "k").await, None);

    // Stores with different prefixes do not see each other's keys.
    assert_eq!(default.get("m").await.unwrap(), None);
    custom.delete("k").await.unwrap();
    assert_eq!(default.get("k").await.unwrap().as_deref(), Some("default"));

    // A store on a caller-made connection manager prefixes too.
    let cm = redis::Client::open(server.url()).unwrap().get_connection_manager().await.unwrap();
    let shared = RedisStore::from_connection_manager(cm, "cm:");
    shared.set("k", "via-cm", Duration::from_secs(60)).await.unwrap();
    assert_eq!(raw_get(&mut raw, "cm:k").await.as_deref(), Some("via-cm"));
    assert!(format!("{shared:?}").contains("cm:"));
}

#[tokio::test]
async fn connect_to_nothing_fails_in_bounded_time() {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let started = Instant::now();
    let result = tokio::time::timeout(BOUND, RedisStore::connect(&url)).await;
    let err = result.expect("connect must not hang").expect_err("nothing listens there");
    assert!(err.to_string().contains("could not connect"), "{}", chain(&err));
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn connect_to_a_silent_server_fails_in_bounded_time() {
    // Accepts connections but never answers, like a hung Redis.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });

    let started = Instant::now();
    let result = tokio::time::timeout(
        BOUND,
        RedisStore::builder(&url)
            .response_timeout(Duration::from_millis(200))
            .operation_timeout(Duration::from_secs(2))
            .connect(),
    )
    .await;
    result.expect("connect must not hang").expect_err("a silent server is not Redis");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    silent.abort();
}

#[tokio::test]
async fn calls_fail_in_bounded_time_while_redis_is_down_then_recover() {
    let mut server = redis_server!();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    store.set("tok", "t-secret", Duration::from_secs(60)).await.unwrap();

    server.kill();
    for _ in 0..3 {
        let result = tokio::time::timeout(BOUND, store.get("tok")).await;
        let err = result.expect("get must not hang").expect_err("redis is down");
        assert!(!chain(&err).contains("t-secret"), "{}", chain(&err));
        let result = tokio::time::timeout(BOUND, store.set("tok", "t-secret", Duration::from_secs(1))).await;
        let err = result.expect("set must not hang").expect_err("redis is down");
        assert!(!chain(&err).contains("t-secret"), "{}", chain(&err));
        let result = tokio::time::timeout(BOUND, store.try_lock("l", Duration::from_secs(1))).await;
        result.expect("try_lock must not hang").expect_err("redis is down");
    }

    // Back up (empty): the same store reconnects by itself.
    server.restart();
    let deadline = Instant::now() + BOUND;
    loop {
        match tokio::time::timeout(BOUND, store.get("tok")).await.expect("get must not hang") {
            Ok(value) => {
                assert_eq!(value, None, "the restarted server persists nothing");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "did not reconnect: {}", chain(&e)),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.set("tok", "t-new", Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.get("tok").await.unwrap().as_deref(), Some("t-new"));
}

#[tokio::test]
async fn password_never_shows() {
    let server = redis_server!("--requirepass", "hunter2");
    let port = server.port();

    let url = format!("redis://:hunter2@127.0.0.1:{port}/");
    let builder = RedisStore::builder(&url);
    let shown = format!("{builder:?}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let store = builder.connect().await.unwrap();
    store.set("tok", "t-secret", Duration::from_secs(60)).await.unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("t-secret"), "{shown}");
    assert!(shown.contains("RedisStore"), "{shown}");
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(shown.contains("lark:"), "{shown}");

    // A wrong password fails to connect, and the error does not repeat it.
    let bad = format!("redis://:wrong-pw@127.0.0.1:{port}/");
    let err = tokio::time::timeout(BOUND, RedisStore::connect(&bad))
        .await
        .expect("connect must not hang")
        .expect_err("wrong password");
    assert!(!chain(&err).contains("wrong-pw"), "{}", chain(&err));
}
