//! Log capture: one shared writer for `tracing-subscriber` that keeps every line and
//! lets a test wait for a line (an event wait on a `tokio::sync::watch`, no polling).
//! The same [`Lines`] collect a child process's stderr ([`super::process`]).

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::watch;

use super::WAIT;

/// Text lines, appended as they are written, that a test can wait on.
#[derive(Clone)]
pub struct Lines {
    inner: Arc<Inner>,
}

struct Inner {
    /// Complete lines, and the bytes of an unfinished one.
    text: Mutex<(Vec<String>, Vec<u8>)>,
    /// The number of complete lines; bumped on every new one.
    count: watch::Sender<usize>,
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            inner: Arc::new(Inner {
                text: Mutex::new((Vec::new(), Vec::new())),
                count: watch::Sender::new(0),
            }),
        }
    }
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines")
            .field("lines", &self.inner.count.borrow().to_owned())
            .finish()
    }
}

impl Lines {
    /// Append one complete line.
    pub fn push(&self, line: impl Into<String>) {
        let n = {
            let mut text = self.inner.text.lock().unwrap();
            text.0.push(line.into());
            text.0.len()
        };
        self.inner.count.send_replace(n);
    }

    /// Every complete line so far.
    pub fn lines(&self) -> Vec<String> {
        self.inner.text.lock().unwrap().0.clone()
    }

    /// Every complete line so far, joined with `\n`.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// The first line that contains every needle; waits for it (bounded by [`WAIT`]).
    pub async fn wait_for_line(&self, needles: &[&str]) -> String {
        self.wait_for_nth(needles, 1).await
    }

    /// The `n`th line (from 1) that contains every needle; waits for it (bounded by
    /// [`WAIT`]).
    pub async fn wait_for_nth(&self, needles: &[&str], n: usize) -> String {
        let find = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| needles.iter().all(|k| l.contains(k)))
                .nth(n.saturating_sub(1))
                .cloned()
        };
        let mut count = self.inner.count.subscribe();
        let wait = async {
            loop {
                // Subscribed before looking: a line pushed meanwhile marks a change.
                if let Some(line) = find(&self.inner.text.lock().unwrap().0) {
                    return line;
                }
                count.changed().await.expect("the sender lives in self");
            }
        };
        match tokio::time::timeout(WAIT, wait).await {
            Ok(line) => line,
            Err(_) => panic!(
                "no line #{n} with {needles:?} within {WAIT:?}:\n{}",
                self.text()
            ),
        }
    }

    /// Waits for a line containing `needle`; returns all the text so far.
    pub async fn wait_for(&self, needle: &str) -> String {
        self.wait_for_line(&[needle]).await;
        self.text()
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let complete: Vec<String> = {
            let mut text = self.inner.text.lock().unwrap();
            text.1.extend_from_slice(buf);
            let mut done = Vec::new();
            while let Some(i) = text.1.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = text.1.drain(..=i).collect();
                done.push(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            done
        };
        for line in complete {
            self.push(line);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn subscriber(lines: &Lines, filter: &str) -> impl tracing::Subscriber + Send + Sync + use<> {
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
}

/// Capture the logs of this thread (`filter`: an `EnvFilter`, e.g. `info` or
/// `trace,warp::server=off`) while the guard lives. With a `current_thread` runtime
/// every task of the server runs on this thread, so this sees all of them.
pub fn capture(filter: &str) -> (Lines, tracing::subscriber::DefaultGuard) {
    let lines = Lines::default();
    let guard = tracing::subscriber::set_default(subscriber(&lines, filter));
    (lines, guard)
}

/// The process-wide capture at level `info` (for multi-threaded runtimes), installed
/// once per test binary; every test of the binary shares it.
pub fn global() -> Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Lines::default();
            tracing::subscriber::set_global_default(subscriber(&lines, "info"))
                .expect("no other global subscriber in this test binary");
            lines
        })
        .clone()
}
