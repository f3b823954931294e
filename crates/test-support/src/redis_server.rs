//! A throwaway `redis-server` on a free 127.0.0.1 port, killed when its guard drops.
//!
//! Without `redis-server` on PATH, [`RedisServer::start`] returns `None` after printing why, or
//! panics when `CODEX_BRIDGE_REQUIRE_REDIS=1` asks for the Redis tests to be mandatory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server may take to answer PING.
const STARTUP_LIMIT: Duration = Duration::from_secs(5);

/// A running server; dropping it kills the process and removes its directory.
pub struct RedisServer {
    child: Child,
    port: u16,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server, or returns `None` (test skipped) if `redis-server` is not installed.
    pub fn start() -> Option<Self> {
        let Some(binary) = find_on_path("redis-server") else {
            if std::env::var("CODEX_BRIDGE_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!(
                    "redis-server not found on PATH but CODEX_BRIDGE_REQUIRE_REDIS=1 (apt-get install redis-server)"
                );
            }
            eprintln!(
                "skipping redis tests: redis-server not found (apt-get install redis-server, \
                 or set CODEX_BRIDGE_REQUIRE_REDIS=1 to make this a failure)"
            );
            return None;
        };
        // The free port we pick can be taken before redis binds it; try a few.
        for _ in 0..3 {
            if let Some(server) = Self::try_start(&binary) {
                return Some(server);
            }
        }
        panic!("redis-server did not start after 3 attempts");
    }

    fn try_start(binary: &PathBuf) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = spawn(binary, port, &dir);
        let mut server = Self { child, port, binary: binary.clone(), dir };
        server.wait_ready().then_some(server) // dropping `server` kills it
    }

    /// True once the server answers PING; false if it exited (most likely the port was taken) or took too long.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + STARTUP_LIMIT;
        while Instant::now() < deadline {
            if self.child.try_wait().expect("try_wait").is_some() {
                return false;
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills the server (SIGKILL), as an outage would.
    #[allow(dead_code)] // used by bridge-core's outage test, which includes this file
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port (its data is gone: nothing is persisted).
    #[allow(dead_code)] // used by bridge-core's outage test, which includes this file
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.binary, self.port, &self.dir);
        assert!(self.wait_ready(), "redis-server did not come back on port {}", self.port);
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(binary: &PathBuf, port: u16, dir: &tempfile::TempDir) -> Child {
    Command::new(binary)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server")
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}
