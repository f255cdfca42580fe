//! `?` on ordinary errors in handlers, middleware and the connect hook: answered as
//! `INTERNAL`, logged on the server with the source chain, never sent to the client.
//! `Reject` passes through `?` unchanged, and inline closures need no error type hint.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use zocket_core::testing::{TestError, TestServer};
use zocket_core::{
    Connect, Context, Cx, HandshakeError, Input, Message, Middleware, Reject, Router,
};

/// An application error with a source, as a database layer would return.
#[derive(Debug, thiserror::Error)]
#[error("loading user 7 failed")]
struct LoadError(#[source] std::io::Error);

#[derive(Deserialize)]
struct Headers {
    #[serde(default)]
    fail: Option<String>,
}

struct User;
impl Context for User {
    type Headers = Headers;
    type State = ();
    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        if conn.headers.fail.is_some() {
            let _: u32 = "db-password=hunter2".parse()?;
        }
        Ok(User)
    }
}

pub enum Load {}
impl Message for Load {
    const NAME: &'static str = "load";
    type Input = ();
    type Output = String;
}
pub enum Deny {}
impl Message for Deny {
    const NAME: &'static str = "deny";
    type Input = ();
    type Output = ();
}
pub enum Parse {}
impl Message for Parse {
    const NAME: &'static str = "parse";
    type Input = String;
    type Output = i64;
}
pub enum Guarded {}
impl Message for Guarded {
    const NAME: &'static str = "guarded";
    type Input = String;
    type Output = String;
}

fn load_user() -> Result<String, LoadError> {
    Err(LoadError(std::io::Error::other(
        "connection reset by db-7.internal",
    )))
}

async fn load(_cx: Cx<User>, _: ()) -> Result<String, Reject> {
    let name = load_user()?;
    Ok(name)
}

async fn deny(_cx: Cx<User>, _: ()) -> Result<(), Reject> {
    let r: Result<(), Reject> = Err(Reject::forbidden("not today").with_data([1, 2]));
    r?;
    Ok(())
}

/// Middleware using `?`: the input must be a number.
struct Numeric;
impl Middleware<User> for Numeric {
    type Out = u64;
    async fn run(&self, _cx: &Cx<User>, input: &Input<'_>) -> Result<u64, Reject> {
        let text = input.get::<Guarded>().cloned().unwrap_or_default();
        Ok(text.parse::<u64>()?)
    }
}

fn router() -> Router<User> {
    Router::new()
        .on::<Load>(load)
        .on::<Deny>(deny)
        // An inline closure: no type hint on the error, `?` on a ParseIntError.
        .on::<Parse>(|_cx, text: String| async move {
            let n: i64 = text.trim().parse()?;
            Ok(n * 2)
        })
        .scope(Numeric, |s| {
            s.on::<Guarded>(|cx: Cx<u64>, _text| async move { Ok(format!("n={}", *cx)) })
        })
}

/// Everything logged while the closure runs (single-threaded runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);
impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
thread_local! {
    /// Where this thread's log lines go (`None`: nowhere).
    static CAPTURE: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the capture of the thread that logs.
struct ThisThread;
impl Write for ThisThread {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| match &mut *c.borrow_mut() {
            Some(logs) => logs.write(buf),
            None => Ok(buf.len()),
        })
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// This thread's capture; removed on drop.
struct Installed;
impl Drop for Installed {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

impl Logs {
    /// Capture what this thread logs. One process-wide subscriber (installed once)
    /// writes each line to the capture of the thread that logs it. (A subscriber per
    /// test lost lines now and then: tracing caches each callsite's interest for the
    /// whole process, and that races with the other tests' subscribers coming and
    /// going.)
    fn install(&self) -> Installed {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ThisThread)
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("the only subscriber of this test binary");
        });
        CAPTURE.with(|c| *c.borrow_mut() = Some(self.clone()));
        Installed
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn question_mark_on_an_error_answers_internal_and_logs_the_chain() {
    let logs = Logs::default();
    let _guard = logs.install();
    let app = TestServer::new(router());
    let c = app.connect([("x", "y")]).await.unwrap();
    let err = c.call::<Load>(()).await.unwrap_err();
    let TestError::Rejected(rej) = &err else {
        panic!("expected a rejection, got {err:?}")
    };
    assert_eq!(rej.code(), "INTERNAL");
    assert_eq!(rej.message(), "Internal server error");
    assert_eq!(rej.data(), None);
    // Nothing of the error reached the client.
    for frame in c.frames() {
        assert!(!frame.contains("db-7"), "leaked: {frame}");
        assert!(!frame.contains("loading user"), "leaked: {frame}");
    }
    // The server log has it, with its source, at ERROR.
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("answered INTERNAL"))
        .unwrap_or_else(|| panic!("no log line in:\n{text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("loading user 7 failed: connection reset by db-7.internal"),
        "{line}"
    );
    // Inside the message span, which names the message.
    assert!(line.contains(" load rpc_id=\"1\""), "{line}");
}

#[tokio::test]
async fn question_mark_on_a_reject_keeps_it() {
    let app = TestServer::new(router());
    let c = app.connect([("x", "y")]).await.unwrap();
    let err = c.call::<Deny>(()).await.unwrap_err();
    assert_eq!(
        err,
        TestError::Rejected(Reject::forbidden("not today").with_data([1, 2]))
    );
}

#[tokio::test]
async fn inline_closures_infer_the_error_type() {
    let app = TestServer::new(router());
    let c = app.connect([("x", "y")]).await.unwrap();
    assert_eq!(c.call::<Parse>(" 21 ".into()).await.unwrap(), 42);
    let err = c.call::<Parse>("twenty".into()).await.unwrap_err();
    assert_eq!(err.code(), Some("INTERNAL"));
}

#[tokio::test]
async fn question_mark_in_middleware() {
    let app = TestServer::new(router());
    let c = app.connect([("x", "y")]).await.unwrap();
    assert_eq!(c.call::<Guarded>("7".into()).await.unwrap(), "n=7");
    let err = c.call::<Guarded>("seven".into()).await.unwrap_err();
    assert_eq!(err.code(), Some("INTERNAL"));
}

#[tokio::test(flavor = "current_thread")]
async fn question_mark_in_the_connect_hook_answers_500() {
    let logs = Logs::default();
    let _guard = logs.install();
    let app = TestServer::new(router());
    let err = app.connect([("fail", "1")]).await.unwrap_err();
    assert_eq!(err, HandshakeError::Internal);
    assert_eq!(err.status(), 500);
    let body = err.body();
    assert_eq!(
        body,
        r#"{"error":"INTERNAL","message":"Internal server error"}"#
    );
    assert!(!body.contains("hunter2"));
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("connect hook failed") && l.contains("invalid digit")),
        "{text}"
    );
}

#[test]
fn reject_equality_ignores_the_internal_error() {
    let a = Reject::from(std::io::Error::other("a"));
    let b = Reject::internal_from("b");
    assert_eq!(a, b);
    assert_eq!(a.internal_error().unwrap().to_string(), "a");
    assert_eq!(Reject::internal().internal_error().map(|_| ()), None);
    assert_eq!(a.to_string(), "INTERNAL: Internal server error");
}
