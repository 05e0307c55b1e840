//! For tests of this crate and of the binary: a real SMTP server on loopback (Python's aiosmtpd, installed by
//! `.ci/run`) that writes what it receives to a maildir. Behind the `testing` feature.

use std::time::Duration;

/// An aiosmtpd process on a free loopback port; killed when dropped.
pub struct SmtpServer {
    pub port: u16,
    maildir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpServer {
    /// Starts the server and waits (at most 15 s) until it accepts connections.
    ///
    /// # Panics
    /// When no port is free, `python3 -m aiosmtpd` cannot start, or it does not listen in time: a test set-up
    /// failure.
    #[allow(clippy::expect_used)]
    pub async fn start() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let maildir = tempfile::tempdir().expect("maildir");
        let child = tokio::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            // Maildir creates the directory (with tmp/, new/, cur/) only when it does not exist yet.
            .arg(maildir.path().join("mail"))
            .kill_on_drop(true)
            .spawn()
            .expect("start aiosmtpd (pip install aiosmtpd)");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "aiosmtpd did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        SmtpServer {
            port,
            maildir,
            _child: child,
        }
    }

    /// The messages received so far, each as its raw text (headers and MIME parts).
    pub fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("mail").join("new");
        std::fs::read_dir(new)
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}
