//! A throwaway `redis-server` for the store benchmarks: 127.0.0.1 only, a free port, no persistence, a
//! temporary directory; SIGKILLed on [`RedisProcess::kill`] and on drop, restartable on the same port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// A running (or killed) server.
pub struct RedisProcess {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    dir: PathBuf,
}

impl RedisProcess {
    /// Starts `redis-server` from PATH in `dir`.
    pub fn start(dir: PathBuf) -> Result<Self, BenchError> {
        let binary = std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).map(|d| d.join("redis-server")).find(|c| c.is_file()))
            .ok_or_else(|| BenchError::Start {
                what: "redis-server",
                message: "not found on PATH (apt-get install redis-server)".to_owned(),
            })?;
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::Other(format!("{}: {e}", dir.display())))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| BenchError::Other(format!("free port: {e}")))?
            .port();
        let mut redis = Self { child: None, port, binary, dir };
        redis.restart()?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILLs the server (an outage: connections are reset, nothing answers).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port and waits until it answers PING.
    pub fn restart(&mut self) -> Result<(), BenchError> {
        self.kill();
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BenchError::Start { what: "redis-server", message: e.to_string() })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BenchError::Start { what: "redis-server", message: format!("no PONG on port {}", self.port) })
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
