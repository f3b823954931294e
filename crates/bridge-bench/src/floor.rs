//! The floor of the overhead benchmark: nginx as a plain reverse proxy in front of the same emulator
//! (`proxy_buffering off`, upstream keep-alive, one worker process), started by the benchmark when `nginx` is
//! installed (`apt-get install nginx-light`), and the CPU time a process spends, read from `/proc`.
//!
//! Invariants: nginx listens on 127.0.0.1 only, keeps all its files in the run's directory, logs no access,
//! and is killed when the handle drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// A running nginx (one process: `master_process off`), killed on drop.
pub struct NginxProcess {
    child: Child,
    pub url: String,
}

impl NginxProcess {
    /// Starts nginx proxying to `upstream` (`host:port`), or `None` when no `nginx` binary is installed.
    pub fn start(upstream: &str, dir: &Path) -> Option<Result<Self, BenchError>> {
        let binary = nginx_binary()?;
        Some(Self::start_with(&binary, upstream, dir))
    }

    fn start_with(binary: &Path, upstream: &str, dir: &Path) -> Result<Self, BenchError> {
        let fail = |message: String| BenchError::Start { what: "nginx", message };
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let port = free_port().map_err(|e| fail(e.to_string()))?;
        let d = dir.display();
        let config = format!(
            "worker_processes 1;\nmaster_process off;\ndaemon off;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_max_body_size 64m;\n  client_body_buffer_size 2m;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream emulator {{ server {upstream}; keepalive 128; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://emulator;\n\
                   proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n\
                   proxy_request_buffering off;\n    }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).map_err(|e| fail(e.to_string()))?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let mut nginx = Self { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || nginx.child.try_wait().ok().flatten().is_some() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                return Err(fail(format!("did not start listening: {}", log.trim())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    /// The process id (the only nginx process: it serves too).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NginxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// User plus system CPU time of a process so far (`/proc/PID/stat`, in clock ticks of 10 ms on Linux).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / ticks_per_second()))
}

fn ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_of_this_process_is_readable_and_grows() {
        let pid = std::process::id();
        let before = super::cpu_time(pid).expect("/proc/self/stat");
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = super::cpu_time(pid).unwrap();
        assert!(after > before, "{before:?} -> {after:?}");
    }
}
