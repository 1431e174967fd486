//! lark-bench: measures lark-rs against lark-testkit (started in process) or a real base URL.
//!
//! ```text
//! cargo run --release -p lark-bench -- SCENARIO [--base-url URL] [--requests N] [--concurrency C]
//! ```
//!
//! Scenarios:
//! - `overhead`: the same N `GET /open-apis/contact/v3/users/ou_1` calls through a bare hyper-util
//!   client with a fixed token and through the SDK's `Client` (cached token, full stack), C at a
//!   time. CPU time counts only the client's threads (read from /proc), not the in-process server's.
//!   The two sides alternate in chunks of 2,000 calls, so machine drift falls on both alike.
//! - `stampede`: C concurrent first calls on a cold token cache; counts token fetches.
//! - `ws`: N events through the long connection from lark-testkit, at most C unacked at a time;
//!   events per second and client CPU per event.
//!
//! With `--base-url`, credentials come from `LARK_APP_ID` and `LARK_APP_SECRET`.
//! Prints one JSON line per run.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use lark_services::Client;
use lark_testkit::{Endpoint, FakePlatform};
use serde_json::json;

mod ceiling;
mod events;
mod ws;

const USER_PATH: &str = "/open-apis/contact/v3/users/ou_1";
const CLIENT_THREAD: &str = "bench-client";

struct Args {
    scenario: String,
    base_url: Option<String>,
    requests: Option<usize>,
    concurrency: Option<usize>,
}

fn usage() -> ExitCode {
    eprintln!("usage: lark-bench (overhead|stampede) [--base-url URL] [--requests N] [--concurrency C]");
    ExitCode::from(2)
}

fn parse_args() -> Option<Args> {
    let mut it = std::env::args().skip(1);
    let scenario = it.next()?;
    let mut args = Args { scenario, base_url: None, requests: None, concurrency: None };
    while let Some(flag) = it.next() {
        let value = it.next()?;
        match flag.as_str() {
            "--base-url" => args.base_url = Some(value),
            "--requests" => args.requests = Some(value.parse().ok().filter(|n| *n > 0)?),
            "--concurrency" => args.concurrency = Some(value.parse().ok().filter(|n| *n > 0)?),
            _ => return None,
        }
    }
    Some(args)
}

/// Where the benchmark sends requests: an in-process testkit or a real platform.
struct Target {
    base_url: String,
    app_id: String,
    app_secret: String,
    platform: Option<FakePlatform>,
    _server: Option<tokio::runtime::Runtime>,
}

fn target(base_url: Option<String>) -> Result<Target, String> {
    match base_url {
        Some(url) => {
            let app_id = std::env::var("LARK_APP_ID").map_err(|_| "--base-url needs LARK_APP_ID")?;
            let app_secret =
                std::env::var("LARK_APP_SECRET").map_err(|_| "--base-url needs LARK_APP_SECRET")?;
            Ok(Target { base_url: url, app_id, app_secret, platform: None, _server: None })
        }
        None => {
            // The fake platform gets its own one-thread runtime, so its CPU is not the client's.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("testkit")
                .on_thread_start(|| pin_to_cpu(1))
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let platform = rt.block_on(FakePlatform::start());
            Ok(Target {
                base_url: platform.base_url(),
                app_id: platform.app_id().to_owned(),
                app_secret: platform.app_secret().to_owned(),
                platform: Some(platform),
                _server: Some(rt),
            })
        }
    }
}

/// Pins the calling thread to one CPU (the client on the first, the in-process server on the
/// second), so the scheduler does not move the two busy threads around during a run.
/// `LARK_BENCH_PIN=0` turns it off; with fewer than two CPUs it does nothing.
fn pin_to_cpu(cpu: usize) {
    if std::env::var("LARK_BENCH_PIN").is_ok_and(|v| v == "0") {
        return;
    }
    if let Some(ids) = core_affinity::get_core_ids().filter(|ids| ids.len() >= 2) {
        core_affinity::set_for_current(ids[cpu % ids.len()]);
    }
}

/// CPU seconds used so far by this process's threads named `name` (Linux /proc; 0 elsewhere).
fn thread_cpu_seconds(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if !stat[open + 1..close].starts_with(name) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // After the name: state is field 0; utime and stime are fields 11 and 12.
        if let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) {
            ticks += u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
        }
    }
    ticks as f64 / 100.0
}

struct Run {
    req_per_s: f64,
    cpu_us_per_req: f64,
    latencies_us: Vec<u64>,
    errors: usize,
}

/// Runs `n` calls of `call`, `c` at a time, on the client runtime.
async fn drive<F, Fut>(n: usize, c: usize, call: F) -> Run
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu0 = thread_cpu_seconds(CLIENT_THREAD);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..c {
        let call = call.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let t = Instant::now();
                if !call().await {
                    errors += 1;
                }
                lat.push(t.elapsed().as_micros() as u64);
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::with_capacity(n);
    let mut errors = 0;
    for w in workers {
        let (lat, e) = w.await.expect("worker panicked");
        latencies_us.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds(CLIENT_THREAD) - cpu0;
    latencies_us.sort_unstable();
    Run { req_per_s: n as f64 / elapsed, cpu_us_per_req: cpu * 1e6 / n as f64, latencies_us, errors }
}

/// The figures of one side measured alone (`LARK_BENCH_ONLY`).
fn only(side: &str, run: Run) -> serde_json::Value {
    json!({
        "only": side,
        "req_per_s": run.req_per_s.round(),
        "cpu_us_per_req": (run.cpu_us_per_req * 10.0).round() / 10.0,
        "errors": run.errors,
    })
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A `Client` for the target, not yet holding a token.
fn client(t: &Target) -> Result<Client, String> {
    Client::builder(t.app_id.clone(), t.app_secret.clone())
        .base_url(t.base_url.clone())
        .build()
        .map_err(|e| e.to_string())
}

/// A `Client` for the target with its tenant token cached.
async fn warm_client(t: &Target) -> Result<Client, String> {
    let sdk = client(t)?;
    sdk.tokens().tenant_access_token(None).await.map_err(|e| e.to_string())?;
    Ok(sdk)
}

async fn fetch_token(t: &Target) -> Result<String, String> {
    let token = client(t)?.tokens().tenant_access_token(None).await.map_err(|e| e.to_string())?;
    Ok(token.expose_secret().to_owned())
}

/// A hyper-util client over a plain HTTP connector (no TLS), as the bare sides use.
type BareClient = HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The bare hyper-util client of `overhead`, `ceiling` and the events loopback run: no TLS,
/// `TCP_NODELAY`, at least `c` idle connections kept.
fn bare_client(c: usize) -> BareClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(c.max(64)).build(connector)
}

/// The bare side of `overhead`: a fixed `Authorization` header, the whole reply parsed into
/// `serde_json::Value` and its `code` checked.
#[derive(Clone)]
struct BareCall {
    client: BareClient,
    url: http::Uri,
    auth: Arc<str>,
}

impl BareCall {
    fn call(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let req = http::Request::get(self.url.clone())
            .header("authorization", &*self.auth)
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        let client = self.client.clone();
        async move {
            match client.request(req).await {
                Ok(resp) => {
                    let ok = resp.status().is_success();
                    let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                    ok && body.is_ok_and(|b| {
                        serde_json::from_slice::<serde_json::Value>(&b).is_ok_and(|v| v["code"] == 0)
                    })
                }
                Err(_) => false,
            }
        }
    }
}

/// The bare side for the user API with `auth` as its `Authorization` header.
fn bare_side(t: &Target, auth: &str, c: usize) -> Result<BareCall, String> {
    let url: http::Uri = format!("{}{USER_PATH}", t.base_url).parse().map_err(|e| format!("{e}"))?;
    Ok(BareCall { client: bare_client(c), url, auth: auth.into() })
}

async fn overhead(t: &Target, n: usize, c: usize) -> Result<serde_json::Value, String> {
    let auth = format!("Bearer {}", fetch_token(t).await?);
    let bare = bare_side(t, &auth, c)?;
    let bare_call = move || bare.call();
    let sdk = warm_client(t).await?;
    let sdk_call = move || {
        let sdk = sdk.clone();
        async move { sdk.get(USER_PATH).send_json().await.is_ok() }
    };

    // For profiling one side alone (e.g. under callgrind): LARK_BENCH_ONLY=bare|sdk.
    match std::env::var("LARK_BENCH_ONLY").as_deref() {
        Ok("bare") => return Ok(only("bare", drive(n, c, bare_call).await)),
        Ok("sdk") => return Ok(only("sdk", drive(n, c, sdk_call).await)),
        _ => {}
    }
    // Warm both pools, then measure in short alternating chunks (which side goes first
    // alternates too), so both sides sample the same moments of the machine. On a shared VM
    // the speed of everything drifts by tens of percent within a second; over many short
    // pairs that drift falls on both sides alike. Rates are calls over summed time per side.
    let warm = (n / 10).clamp(100, 2000);
    drive(warm, c, bare_call.clone()).await;
    drive(warm, c, sdk_call.clone()).await;
    let chunk = n.min(CHUNK);
    let pairs = n.div_ceil(chunk);
    let mut bare = Totals::default();
    let mut sdk = Totals::default();
    for pair in 0..pairs {
        let calls = chunk.min(n - pair * chunk);
        if pair % 2 == 0 {
            bare.add(drive(calls, c, bare_call.clone()).await);
            sdk.add(drive(calls, c, sdk_call.clone()).await);
        } else {
            sdk.add(drive(calls, c, sdk_call.clone()).await);
            bare.add(drive(calls, c, bare_call.clone()).await);
        }
    }
    let (s, b) = (sdk.finish(), bare.finish());
    Ok(json!({
        "scenario": "overhead",
        "requests": n,
        "concurrency": c,
        "pairs": pairs,
        "sdk_req_per_s": s.req_per_s.round(),
        "bare_req_per_s": b.req_per_s.round(),
        "ratio": (s.req_per_s / b.req_per_s * 1000.0).round() / 1000.0,
        "sdk_cpu_us_per_req": (s.cpu_us_per_req * 10.0).round() / 10.0,
        "bare_cpu_us_per_req": (b.cpu_us_per_req * 10.0).round() / 10.0,
        "sdk_p50_us": percentile(&s.latencies_us, 0.50),
        "sdk_p99_us": percentile(&s.latencies_us, 0.99),
        "bare_p50_us": percentile(&b.latencies_us, 0.50),
        "bare_p99_us": percentile(&b.latencies_us, 0.99),
        "errors": s.errors + b.errors,
    }))
}

/// Calls per measured chunk in `overhead` (each side runs one chunk per pair).
const CHUNK: usize = 2_000;

/// One side's chunks added up.
#[derive(Default)]
struct Totals {
    calls: usize,
    secs: f64,
    cpu_us: f64,
    latencies_us: Vec<u64>,
    errors: usize,
}

impl Totals {
    fn add(&mut self, run: Run) {
        let calls = run.latencies_us.len();
        self.calls += calls;
        self.secs += calls as f64 / run.req_per_s;
        self.cpu_us += run.cpu_us_per_req * calls as f64;
        self.latencies_us.extend(run.latencies_us);
        self.errors += run.errors;
    }

    fn finish(mut self) -> Run {
        self.latencies_us.sort_unstable();
        let calls = self.calls.max(1) as f64;
        Run {
            req_per_s: calls / self.secs.max(f64::MIN_POSITIVE),
            cpu_us_per_req: self.cpu_us / calls,
            latencies_us: self.latencies_us,
            errors: self.errors,
        }
    }
}

/// Client CPU per call through stacks built up one public layer at a time (best of 3 rounds).
async fn layers(t: &Target, n: usize, c: usize) -> Result<serde_json::Value, String> {
    use lark_transport::{HttpService, RetryPolicy, TimeoutLayer, TraceLayer};
    use tower::util::BoxCloneSyncService;
    use tower::{ServiceBuilder, ServiceExt};
    let http = lark_transport::HttpClient::new().map_err(|e| e.to_string())?;
    let boxed_http: HttpService = BoxCloneSyncService::new(http.clone());
    let manager = lark_auth::TokenManager::builder(t.app_id.clone(), t.app_secret.clone())
        .base_url(t.base_url.clone())
        .http(boxed_http.clone())
        .build()
        .map_err(|e| e.to_string())?;
    manager.tenant_access_token(None).await.map_err(|e| e.to_string())?;
    let auth = lark_auth::LarkAuthLayer::new(manager);
    let secs = std::time::Duration::from_secs;
    let variants: Vec<(&str, HttpService)> = vec![
        ("http", boxed_http.clone()),
        ("auth", BoxCloneSyncService::new(ServiceBuilder::new().layer(auth.clone()).service(http.clone()))),
        (
            "auth_retry",
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(tower::retry::RetryLayer::new(RetryPolicy::default()))
                    .layer(auth.clone())
                    .service(http.clone()),
            ),
        ),
        (
            "auth_retry_timeouts",
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(TimeoutLayer::total(secs(90)))
                    .layer(tower::retry::RetryLayer::new(RetryPolicy::default()))
                    .layer(TimeoutLayer::attempt(secs(30)))
                    .layer(auth.clone())
                    .service(http.clone()),
            ),
        ),
        (
            "full_stack",
            BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(TraceLayer)
                    .layer(TimeoutLayer::total(secs(90)))
                    .layer(tower::retry::RetryLayer::new(RetryPolicy::default()))
                    .layer(TimeoutLayer::attempt(secs(30)))
                    .layer(auth.clone())
                    .service(http.clone()),
            ),
        ),
    ];
    let token = fetch_token(t).await?;
    let base = t.base_url.clone();
    let mut best: Vec<f64> = vec![f64::MAX; variants.len()];
    for _round in 0..3 {
        for (i, (name, svc)) in variants.iter().enumerate() {
            let (svc, base, token) = (svc.clone(), base.clone(), token.clone());
            let needs_header = *name == "http";
            let call = move || {
                let mut req = lark_transport::ApiRequest::new(http::Method::GET, USER_PATH);
                if needs_header {
                    req = req.header("authorization", format!("Bearer {token}"));
                }
                let req = req.build(&base);
                let svc = svc.clone();
                async move {
                    match req {
                        Ok(req) => svc.oneshot(req).await.is_ok(),
                        Err(_) => false,
                    }
                }
            };
            let run = drive(n, c, call).await;
            best[i] = best[i].min(run.cpu_us_per_req);
        }
    }
    let sdk = warm_client(t).await?;
    let mut client_best = [f64::MAX; 3];
    for _round in 0..3 {
        let c1 = sdk.clone();
        let raw = drive(n, c, move || {
            let c1 = c1.clone();
            async move { c1.get(USER_PATH).send_raw().await.is_ok() }
        })
        .await;
        let c2 = sdk.clone();
        let json_run = drive(n, c, move || {
            let c2 = c2.clone();
            async move { c2.get(USER_PATH).send_json().await.is_ok() }
        })
        .await;
        let (bare_client, url) = (
            HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>(),
            format!("{}{USER_PATH}", t.base_url),
        );
        let auth_header = format!("Bearer {token}");
        let bare = drive(n, c, move || {
            let req = http::Request::get(url.as_str())
                .header("authorization", auth_header.as_str())
                .body(Full::new(Bytes::new()))
                .expect("valid request");
            let bare_client = bare_client.clone();
            async move {
                match bare_client.request(req).await {
                    Ok(resp) => resp.into_body().collect().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        client_best[0] = client_best[0].min(raw.cpu_us_per_req);
        client_best[1] = client_best[1].min(json_run.cpu_us_per_req);
        client_best[2] = client_best[2].min(bare.cpu_us_per_req);
    }
    let mut out = serde_json::Map::new();
    out.insert("scenario".into(), json!("layers"));
    out.insert("bare_no_parse_cpu_us_per_req".into(), json!((client_best[2] * 10.0).round() / 10.0));
    for ((name, _), cpu) in variants.iter().zip(best) {
        out.insert(format!("{name}_cpu_us_per_req"), json!((cpu * 10.0).round() / 10.0));
    }
    out.insert("client_raw_cpu_us_per_req".into(), json!((client_best[0] * 10.0).round() / 10.0));
    out.insert("client_json_cpu_us_per_req".into(), json!((client_best[1] * 10.0).round() / 10.0));
    Ok(serde_json::Value::Object(out))
}

/// Where the SDK's time goes: the same calls through growing parts of the stack.
async fn breakdown(t: &Target, n: usize, c: usize) -> Result<serde_json::Value, String> {
    use tower::ServiceExt;
    let token = fetch_token(t).await?;
    let auth = format!("Bearer {token}");
    let http = lark_transport::HttpClient::new().map_err(|e| e.to_string())?;
    let base = t.base_url.clone();
    let client_only = {
        let (http, base, auth) = (http.clone(), base.clone(), auth.clone());
        move || {
            let req = lark_transport::ApiRequest::new(http::Method::GET, USER_PATH)
                .header("authorization", auth.clone())
                .build(&base);
            let http = http.clone();
            async move {
                match req {
                    Ok(req) => http.oneshot(req).await.is_ok(),
                    Err(_) => false,
                }
            }
        }
    };
    let sdk = warm_client(t).await?;
    let stack_raw = {
        let sdk = sdk.clone();
        move || {
            let sdk = sdk.clone();
            async move { sdk.get(USER_PATH).send_raw().await.is_ok() }
        }
    };
    let full = move || {
        let sdk = sdk.clone();
        async move { sdk.get(USER_PATH).send_json().await.is_ok() }
    };
    drive(n / 10, c, client_only.clone()).await;
    let a = drive(n, c, client_only).await;
    let b = drive(n, c, stack_raw).await;
    let f = drive(n, c, full).await;
    Ok(json!({
        "scenario": "breakdown",
        "http_client_cpu_us_per_req": (a.cpu_us_per_req * 10.0).round() / 10.0,
        "stack_no_decode_cpu_us_per_req": (b.cpu_us_per_req * 10.0).round() / 10.0,
        "full_cpu_us_per_req": (f.cpu_us_per_req * 10.0).round() / 10.0,
        "errors": a.errors + b.errors + f.errors,
    }))
}

async fn stampede(t: &Target, c: usize) -> Result<serde_json::Value, String> {
    let before = t.platform.as_ref().map(|p| p.hits(Endpoint::TenantAccessTokenInternal));
    let sdk = client(t)?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(c);
    for _ in 0..c {
        let sdk = sdk.clone();
        tasks.push(tokio::spawn(async move { sdk.get(USER_PATH).send_json().await.is_ok() }));
    }
    let mut errors = 0;
    for task in tasks {
        if !task.await.unwrap_or(false) {
            errors += 1;
        }
    }
    let elapsed = start.elapsed();
    let fetches = match (&t.platform, before) {
        (Some(p), Some(b)) => json!(p.hits(Endpoint::TenantAccessTokenInternal) - b),
        _ => serde_json::Value::Null,
    };
    Ok(json!({
        "scenario": "stampede",
        "concurrency": c,
        "token_fetches": fetches,
        "errors": errors,
        "elapsed_ms": elapsed.as_millis() as u64,
    }))
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else { return usage() };
    let t = match target(args.base_url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("lark-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client_rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(CLIENT_THREAD)
        .on_thread_start(|| pin_to_cpu(0))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lark-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = client_rt.block_on(async {
        match args.scenario.as_str() {
            "overhead" => overhead(&t, args.requests.unwrap_or(20_000), args.concurrency.unwrap_or(32)).await,
            "stampede" => stampede(&t, args.concurrency.unwrap_or(1000)).await,
            "ws" => ws::ws(&t, args.requests.unwrap_or(50_000), args.concurrency.unwrap_or(256)).await,
            "events" => {
                events::events(args.requests.unwrap_or(200_000), args.concurrency.unwrap_or(32)).await
            }
            "ceiling" => {
                ceiling::ceiling(&t, args.requests.unwrap_or(60_000), args.concurrency.unwrap_or(32)).await
            }
            "layers" => layers(&t, args.requests.unwrap_or(20_000), args.concurrency.unwrap_or(32)).await,
            "breakdown" => {
                breakdown(&t, args.requests.unwrap_or(20_000), args.concurrency.unwrap_or(32)).await
            }
            other => Err(format!("unknown scenario `{other}`")),
        }
    });
    client_rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lark-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
