//! A throwaway `redis-server` for tests: a free port on 127.0.0.1, no persistence, killed on drop.
//! Exported under `test-kit` so integration tests (and the cluster tests to come) can start one.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// One `redis-server` child process on a fixed port. `stop`/`start`/`restart` keep the port, so a
/// broker's URL stays valid across them; a restart comes back empty (`--save ''`, no AOF).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    ///
    /// # Panics
    /// When `redis-server` is not installed (run `.ci/redis.sh`, or `apt-get install
    /// redis-server`) or does not answer within 10 s: a test cannot go on without it.
    pub fn spawn() -> Self {
        // Port 0 lets the kernel pick a free port; the listener is closed right away so Redis can
        // bind it (a race with another process taking it is possible, and fails loudly below).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no free local port")
            .port();
        let mut server = Self { port, child: None };
        server.start();
        server
    }

    /// The URL brokers connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts it again after [`Self::stop`] (on the same port, empty); does nothing if running.
    pub fn start(&mut self) {
        if self.child.is_some() {
            return;
        }
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): install it with `apt-get install -y \
                     redis-server` or run .ci/redis.sh"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.answers_ping() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "redis-server on port {} exited at start: {status}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it and waits until it is gone (its port is then refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Kill fails only if it already exited, and then wait still reaps it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts it: same port, empty data.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        conn.write_all(b"PING\r\n").is_ok()
            && conn.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
