//! A Redis server of a test's own, which the test can stop, pause and start
//! again on the same port: for faults, never the machine's shared Redis.

use std::process::{Child, Command, Stdio};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{PATIENCE, wait_until};

pub struct OwnRedis {
    pub port: u16,
    process: Option<Child>,
}

impl OwnRedis {
    /// Starts `redis-server` on a free port and waits until it answers.
    pub async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let mut own = Self {
            port,
            process: None,
        };
        own.resume().await;
        own
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again (after [`OwnRedis::kill`]) and waits until it answers.
    pub async fn resume(&mut self) {
        let process = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs it)");
        self.process = Some(process);
        let port = self.port;
        wait_until(PATIENCE, "the test's Redis to answer", async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
    }

    /// Kills it (SIGKILL): connections drop, nothing answers.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().ok();
            process.wait().ok();
        }
    }

    /// Makes it hold every client's commands for `millis` (`CLIENT PAUSE`):
    /// connections stay open and nothing answers, as when Redis stalls.
    pub async fn pause(&self, millis: u64) {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let millis = millis.to_string();
        let command = format!(
            "*4\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n${}\r\n{millis}\r\n$3\r\nALL\r\n",
            millis.len()
        );
        stream.write_all(command.as_bytes()).await.unwrap();
        let mut answer = [0_u8; 5];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"+OK\r\n");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
