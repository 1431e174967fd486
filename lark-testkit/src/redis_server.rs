//! Starts a throwaway `redis-server` on a free loopback port for a test.
//!
//! Used by the workspace's Redis tests and available to users' own tests; standard library only.
//!
//! If `redis-server` is not on `PATH`, [`RedisServer::start`] returns `None` after printing
//! `SKIPPED: redis-server not found` to stderr, so the test can return early; with
//! `LARK_REQUIRE_REDIS=1` in the environment it panics instead, so CI cannot skip silently.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `INFO server`.
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

    /// Spawns `redis-server` on `self.port` and waits until it answers as itself (see `is_ours`).
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
            if self.is_ours() {
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
                    "redis-server did not answer as itself within {STARTUP_LIMIT:?}; log:\n{}",
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

    /// Whether the server listening on the port is this one's child: it must answer `INFO server`
    /// (after `AUTH` when `--requirepass` was given) with the child's `process_id`. A server that
    /// merely answers on the port may be another test's, one that took the port first; talking to
    /// it would make this test fail once that other server is killed.
    fn is_ours(&self) -> bool {
        let Some(pid) = self.child.as_ref().map(Child::id) else { return false };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut request = Vec::new();
        if let Some(password) = self.password() {
            request.extend_from_slice(&resp_command(&["AUTH", password]));
        }
        request.extend_from_slice(&resp_command(&["INFO", "server"]));
        if stream.write_all(&request).is_err() {
            return false;
        }
        read_process_id(&mut stream) == Some(pid)
    }

    /// The value given with `--requirepass`, if any.
    fn password(&self) -> Option<&str> {
        let at = self.extra_args.iter().position(|a| a == "--requirepass")?;
        self.extra_args.get(at + 1).map(String::as_str)
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

/// A loopback port nothing listens on right now (it may be taken again at any time). Within one
/// process a port is handed out once, so two servers started side by side never share one.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr of a bound listener").port();
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("the system gave 64 ports in a row that were already handed out");
}

/// A command in the Redis protocol's array form (any bytes in the arguments are safe).
fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads replies until the `process_id:` line of an `INFO server` reply (at most 64 KiB, each read
/// bounded by the stream's timeout). `None` on an error reply, a timeout or end of stream.
fn read_process_id(stream: &mut TcpStream) -> Option<u32> {
    const FIELD: &[u8] = b"process_id:";
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while seen.len() < 64 * 1024 {
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        seen.extend_from_slice(&chunk[..n]);
        if seen.starts_with(b"-") || seen.windows(3).any(|w| w == b"\r\n-") {
            return None;
        }
        if let Some(at) = seen.windows(FIELD.len()).position(|w| w == FIELD) {
            let rest = &seen[at + FIELD.len()..];
            if let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
                return std::str::from_utf8(&rest[..end]).ok()?.trim().parse().ok();
            }
        }
    }
    None
}

fn unique_dir(port: u16) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("lark-redis-{}-{port}-{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_cannot_bind_is_not_mistaken_for_the_one_on_its_port() {
        let Some(first) = RedisServer::start() else { return };
        let mut second = RedisServer {
            child: None,
            port: first.port(),
            dir: unique_dir(first.port()),
            extra_args: Vec::new(),
        };
        std::fs::create_dir_all(&second.dir).unwrap();
        match second.spawn_and_wait() {
            Err(Failure::DidNotStart(why)) => assert!(why.contains("exited"), "{why}"),
            Err(Failure::NotInstalled) => panic!("redis-server vanished"),
            Ok(()) => panic!("took the first server (port {}) for its own", first.port()),
        }
        assert!(first.is_ours(), "the first server still answers as itself");
    }

    #[test]
    fn a_password_protected_server_is_recognised() {
        let Some(server) = RedisServer::start_with_args(&["--requirepass", "p w\r\n"]) else { return };
        assert!(server.is_ours());
    }

    #[test]
    fn ports_are_handed_out_once_per_process() {
        let ports: BTreeSet<u16> = (0..200).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 200);
    }
}
