//! The handshake of the reference app (REFERENCE_APP.md, handshake headers): refusals with their HTTP status and JSON body, the defaults, the client id.
//!
//! Each scenario is written once against [`Harness`] and runs in-process, on
//! `zocket-warp` and on `zocket-hyper` (test names `in_process::*`, `warp::*`,
//! `hyper::*`).

use serde_json::json;
use zocket_core::Server;
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::{Harness, http};

fn app() -> Server<RefCtx> {
    Server::new(reference::router())
}

async fn handshake_invalid_role_is_400_with_issues<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let refused = app.refused("userName=ada&userRole=boss").await;
    assert_eq!(refused.status, 400, "{refused:?}");
    if let Some(answer) = &refused.http {
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(
            answer.header("sec-websocket-accept").is_none(),
            "no upgrade"
        );
    }
    let body = refused.body;
    assert_eq!(body["error"], "INVALID_HEADERS", "{body}");
    assert!(body["message"].as_str().unwrap().contains("boss"), "{body}");
    assert_eq!(body["issues"][0]["path"], "userRole", "{body}");
    assert!(
        body["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("moderator"),
        "{body}"
    );
    assert_eq!(app.stats().connections_total, 0);

    // Case matters: role names are lower case.
    assert_eq!(app.refused("userRole=Admin").await.status, 400);

    // The same request with a valid role is upgraded.
    match app.addr() {
        Some(addr) => {
            let answer = http::upgrade(addr, "/?userName=ada&userRole=moderator").await;
            assert_eq!(answer.status, 101, "{answer:?}");
            assert_eq!(
                answer.header("sec-websocket-accept").as_deref(),
                Some(http::SAMPLE_ACCEPT)
            );
        }
        None => drop(app.client("userName=ada&userRole=moderator").await),
    }
}

async fn handshake_bad_token_is_401<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    let refused = app.refused("userName=ada&token=bad").await;
    assert_eq!(refused.status, 401, "{refused:?}");
    if let Some(answer) = &refused.http {
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/json")
        );
    }
    let body = refused.body;
    assert_eq!(body["error"], "UNAUTHORIZED", "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(app.stats().handshakes_rejected, 1);

    // Any other token is fine.
    let mut a = app.client("userName=ada&token=good").await;
    assert_eq!(
        a.ok("greet", json!({"name": "x"})).await,
        Some(json!("Hello, x!"))
    );
}

async fn handshake_defaults_and_client_id<H: Harness<Ctx = RefCtx>>() {
    let app = H::start(app()).await;
    // No headers at all: userName "User", role "user".
    let mut a = app.client("").await;
    let mut b = app.client("userName=bob&x-zocket-version=0").await;
    assert!(a.client_id.len() >= 16, "{}", a.client_id);
    assert_ne!(a.client_id, b.client_id);
    let target = b.client_id.clone();
    assert_eq!(
        a.ok(
            "chat.private",
            json!({"targetUserId": target, "message": "hi"})
        )
        .await,
        None
    );
    let private = b.event("chat.private").await;
    assert_eq!(private["from"], "User");
    // role "user" by default: staff-only messages are forbidden.
    let err = a
        .err("system.announcement", json!({"message": "hello"}))
        .await;
    assert_eq!(err["code"], "FORBIDDEN");
}

zocket_tests::scenarios!(RefCtx;
    all: [handshake_invalid_role_is_400_with_issues, handshake_bad_token_is_401, handshake_defaults_and_client_id],
);
