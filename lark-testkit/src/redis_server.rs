//! Starts a throwaway `redis-server` on a free loopback port for a test.
//!
//! Used by the workspace's Redis tests and available to users' own tests; standard library only.
//!
//! If `redis-server` is not on `PATH`, [`RedisServer::start`] returns `None` after printing
//! `SKIPPED: redis-server not found` to stderr, so the test can return early; with
//! `LARK_REQUIRE_REDIS=1` in the environment it panics instead, so CI cannot skip silently.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first PING.
const STARTUP_LIMIT: Duration = Duration::from_secs(5);
/// How often the starting server is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How many ports are tried if another process grabs the free port before the server binds it.
const START_ATTEMPTS: usize = 3;

/// A running `redis-server`, killed (and its directory removed) on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server with no persistence. `None` if `redis-server` is not installed (see the
    /// module docs).
    pub fn start() -> Option<RedisServer> {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra command-line arguments, e.g. `["--requirepass", "secret"]`.
    /// `None` if `redis-server` is not installed (see the module docs).
    ///
    /// # Panics
    ///
    /// If the server does not answer within 5 seconds, or if `redis-server` is missing and
    /// `LARK_REQUIRE_REDIS=1`.
    pub fn start_with_args(extra_args: &[&str]) -> Option<RedisServer> {
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(extra_args) {
                Ok(server) => return Some(server),
                Err(Failure::NotInstalled) => {
                    if std::env::var("LARK_REQUIRE_REDIS").as_deref() == Ok("1") {
                        panic!("redis-server not found and LARK_REQUIRE_REDIS=1");
                    }
                    eprintln!("SKIPPED: redis-server not found");
                    return None;
                }
                Err(Failure::DidNotStart(why)) => last_failure = why,
            }
        }
        panic!("redis-server did not start after {START_ATTEMPTS} attempts: {last_failure}");
    }

    fn try_start(extra_args: &[&str]) -> Result<RedisServer, Failure> {
        let port = free_port();
        let dir = unique_dir(port);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::DidNotStart(format!("cannot create {}: {e}", dir.display())))?;
        // From here on, dropping `server` kills the child and removes the directory.
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.spawn_and_wait()?;
        Ok(server)
    }

    /// Spawns `redis-server` on `self.port` and waits until it answers PING.
    fn spawn_and_wait(&mut self) -> Result<(), Failure> {
        let spawned = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--logfile", "redis.log"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        self.child = Some(match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Failure::NotInstalled),
            Err(e) => return Err(Failure::DidNotStart(format!("cannot spawn redis-server: {e}"))),
        });
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if self.answers_ping() {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(Failure::DidNotStart(format!(
                    "redis-server exited with {status}; log:\n{}",
                    self.log()
                )));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(Failure::DidNotStart(format!(
                    "redis-server did not answer PING within {STARTUP_LIMIT:?}; log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts the server again on the same port after [`kill`](Self::kill) (empty: nothing is
    /// persisted).
    ///
    /// # Panics
    ///
    /// If it does not answer within 5 seconds (e.g. another process took the port meanwhile).
    pub fn restart(&mut self) {
        self.kill();
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(Failure::NotInstalled) => panic!("redis-server disappeared from PATH"),
            Err(Failure::DidNotStart(why)) => panic!("redis-server did not restart: {why}"),
        }
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server now (e.g. to test an outage), waiting until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether something on the port answers a PING like Redis (`+PONG`, or `-NOAUTH` when a
    /// password is required).
    fn answers_ping(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 16];
        match stream.read(&mut reply) {
            Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"),
            Err(_) => false,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Failure {
    NotInstalled,
    DidNotStart(String),
}

/// A loopback port nothing listens on right now (it may be taken again at any time).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr of a bound listener").port()
}

fn unique_dir(port: u16) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("lark-redis-{}-{port}-{n}", std::process::id()))
}
