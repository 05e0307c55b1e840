//! Running the real `phoenix` executable in tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use serde_json::Value;

pub const PHOENIX: &str = env!("CARGO_BIN_EXE_phoenix");
pub const PASSWORD: &str = "correct horse battery staple";
/// The secrets key of test deployments on PostgreSQL (base64 of 32 bytes), which require one.
pub const SECRETS_KEY: &str = "cGhvZW5peCB0ZXN0IHNlY3JldHMga2V5LCAzMiBieXQ=";

pub fn phoenix(data: &std::path::Path) -> Command {
    let mut command = Command::new(PHOENIX);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--data-dir")
        .arg(data);
    command
}

/// A `phoenix serve` process whose JSON log lines arrive on a channel.
pub struct Server {
    pub child: Child,
    logs: mpsc::Receiver<Value>,
    pub address: String,
}

impl Server {
    pub fn start(data: &std::path::Path) -> Server {
        Server::start_with(data, &[])
    }

    /// Starts `phoenix serve` with extra environment variables.
    pub fn start_with(data: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let mut child = phoenix(data)
            .envs(env.iter().copied())
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                } else {
                    let _ = tx.send(Value::String(line));
                }
            }
        });
        let mut server = Server {
            child,
            logs,
            address: String::new(),
        };
        let listening = server.wait_for(|log| log["message"] == "phoenix listening");
        server.address = listening["address"].as_str().unwrap().to_owned();
        server
    }

    /// Blocks until a log line matches (or the process ends, which fails the test).
    pub fn wait_for(&self, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let log = self
                .logs
                .recv()
                .expect("phoenix exited before logging the expected line");
            assert!(log.is_object(), "every log line is JSON: {log}");
            if matches(&log) {
                return log;
            }
        }
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
