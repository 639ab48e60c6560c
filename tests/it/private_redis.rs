//! A Redis server of a test's own, for tests that stop and restart Redis or need one with a
//! password on a port of its own.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct PrivateRedis {
    pub port: u16,
    /// `requirepass`, when the server wants one.
    pub password: Option<String>,
    /// More `redis-server` arguments (`--replicaof …`).
    extra: Vec<String>,
    child: Mutex<Option<Child>>,
    /// Where a durable server keeps its append-only file (kept across restarts).
    dir: Option<tempfile::TempDir>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        PrivateRedis::start_with(None)
    }

    /// A server that refuses every command until `AUTH password`.
    pub fn with_password(password: &str) -> PrivateRedis {
        PrivateRedis::start_with(Some(password.to_string()))
    }

    /// A server started with more arguments.
    pub fn with_args(extra: &[&str]) -> PrivateRedis {
        PrivateRedis::start_full(None, extra.iter().map(|a| a.to_string()).collect())
    }

    /// A server that keeps what it acknowledged across a stop (or a kill) and a restart:
    /// every write is in its append-only file, synced before the reply.
    pub fn durable() -> PrivateRedis {
        let r = PrivateRedis {
            port: crate::helpers::free_port(),
            password: None,
            extra: Vec::new(),
            child: Mutex::new(None),
            dir: Some(tempfile::tempdir().expect("a temporary directory")),
        };
        r.restart();
        r
    }

    fn start_with(password: Option<String>) -> PrivateRedis {
        PrivateRedis::start_full(password, Vec::new())
    }

    fn start_full(password: Option<String>, extra: Vec<String>) -> PrivateRedis {
        let port = crate::helpers::free_port();
        let r = PrivateRedis {
            port,
            password,
            extra,
            child: Mutex::new(None),
            dir: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the server (again) on the same port: empty, or with what it had if durable.
    pub fn restart(&self) {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]
        .map(String::from)
        .to_vec();
        match &self.dir {
            None => args.extend(["--appendonly", "no"].map(String::from)),
            Some(dir) => {
                args.extend(
                    ["--appendonly", "yes", "--appendfsync", "always", "--dir"].map(String::from),
                );
                args.push(dir.path().display().to_string());
            }
        }
        if let Some(p) = &self.password {
            args.extend(["--requirepass".to_string(), p.clone()]);
        }
        args.extend(self.extra.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server can be started");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private Redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server.
    pub fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
