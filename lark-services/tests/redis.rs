//! Several Client instances sharing one real Redis, as a multi-instance marketplace deployment
//! does. Needs `redis-server` (skipped without it, unless `LARK_REQUIRE_REDIS=1`).

use std::time::Duration;

use lark_services::{Client, LarkError, RedisStore};
use lark_testkit::redis_server::{free_port, RedisServer};
use lark_testkit::{Endpoint, FakePlatform};
use lark_types::TokenErrorKind;

const USER_PATH: &str = "/open-apis/contact/v3/users/:user_id";

async fn instance(p: &FakePlatform, redis_url: &str, marketplace: bool) -> Client {
    // Each instance has its own connection, as separate processes would.
    let store = RedisStore::builder(redis_url).key_prefix("it:").connect().await.unwrap();
    let b = Client::builder(p.app_id(), p.app_secret()).base_url(p.base_url()).token_store(store);
    if marketplace { b.marketplace() } else { b }.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_set_through_one_instance_serves_the_other_and_only_one_fetches() {
    let Some(redis) = RedisServer::start() else { return };
    let p = FakePlatform::start().await;
    let a = instance(&p, &redis.url(), true).await;
    let b = instance(&p, &redis.url(), true).await;

    // The app_ticket arrives at instance A only.
    a.set_app_ticket(&p.issue_app_ticket()).await.unwrap();

    // Both instances serve tenant t1 at once, 20 calls each.
    let mut calls = Vec::new();
    for i in 0..40 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        calls.push(tokio::spawn(async move {
            c.get(USER_PATH).path_param("user_id", "ou_1").tenant_key("t1").send_json().await
        }));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(p.hits(Endpoint::AppAccessToken), 1, "one app token for both instances");
    assert_eq!(p.hits(Endpoint::TenantAccessToken), 1, "one tenant token for both instances");
    assert_eq!(p.hits(Endpoint::AppTicketResend), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_built_instances_share_one_token() {
    let Some(redis) = RedisServer::start() else { return };
    let p = FakePlatform::start().await;
    let instances = [
        instance(&p, &redis.url(), false).await,
        instance(&p, &redis.url(), false).await,
        instance(&p, &redis.url(), false).await,
    ];
    let mut calls = Vec::new();
    for i in 0..90 {
        let c = instances[i % 3].clone();
        calls.push(tokio::spawn(
            async move { c.get(USER_PATH).path_param("user_id", "ou_2").send_json().await },
        ));
    }
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 1);
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_error_never_a_panic() {
    // Nothing listens on this port.
    let port = free_port();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        RedisStore::connect(&format!("redis://127.0.0.1:{port}/")),
    )
    .await
    .expect("connect is bounded")
    .unwrap_err();
    assert!(err.to_string().contains("token store error"), "{err}");
}

#[tokio::test]
async fn redis_going_away_fails_calls_with_a_store_error() {
    let Some(mut redis) = RedisServer::start() else { return };
    let p = FakePlatform::start().await;
    let warm = instance(&p, &redis.url(), false).await;
    let cold = instance(&p, &redis.url(), false).await;
    warm.get(USER_PATH).path_param("user_id", "ou_1").send_json().await.unwrap();
    redis.kill();

    // An instance that has no token in process must ask the store, which is gone.
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        cold.get(USER_PATH).path_param("user_id", "ou_1").send_json(),
    )
    .await
    .expect("a dead store fails in bounded time")
    .unwrap_err();
    match &err {
        LarkError::Token(t) => assert_eq!(t.kind(), TokenErrorKind::Store),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_not_sent());
    let contact_calls = p.requests().iter().filter(|r| r.path.starts_with("/open-apis/contact")).count();
    assert_eq!(contact_calls, 1, "nothing is sent without a token");

    // The instance that already holds a token in process keeps working until it must refresh.
    warm.get(USER_PATH).path_param("user_id", "ou_1").send_json().await.unwrap();
}
