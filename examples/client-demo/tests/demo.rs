//! The `client-demo` binary against the reference app (served in this process, on a
//! real socket, with either adapter): it prints every room message, and keeps doing so
//! across a server restart (it reconnects and joins its room again).

use std::time::Duration;

use zocket_client::Client;
use zocket_core::Server;
use zocket_examples::reference::contract::messages::{RoomsJoin, RoomsMessage};
use zocket_examples::reference::contract::{RoomIn, RoomMessageIn};
use zocket_examples::reference::{self, RefCtx};
use zocket_tests::support::process::{Process, run_to_end};
use zocket_tests::support::{Adapter, AppServer};

async fn start_at(adapter: Adapter, addr: &str) -> AppServer<RefCtx> {
    let addr = addr.parse().unwrap();
    AppServer::start_at(adapter, Server::new(reference::router()), addr).await
}

/// Once the demo has joined its room (its `n`th `in rooms` status line): a speaker
/// says `text` there, and the demo prints it.
async fn said_and_printed(demo: &mut Process, url: &str, joins: usize, text: &str) -> String {
    demo.log.wait_for_nth(&["in rooms", "demo"], joins).await;
    let speaker = Client::builder(url)
        .header("userName", "Speaker")
        .rpc_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("the speaker connects");
    speaker
        .call::<RoomsJoin>(RoomIn::new("demo"))
        .await
        .unwrap();
    speaker
        .call::<RoomsMessage>(RoomMessageIn::new("demo", text))
        .await
        .unwrap();
    let line = demo.line().await;
    speaker.close().await;
    line
}

async fn client_demo_prints_room_messages_across_restarts(adapter: Adapter) {
    let mut server = start_at(adapter, "127.0.0.1:0").await;
    let url = server.url();
    let mut demo = Process::spawn(
        env!("CARGO_BIN_EXE_client-demo"),
        &["--url", &url, "--room", "demo", "--name", "Demo"],
        &[],
    );
    assert_eq!(
        said_and_printed(&mut demo, &url, 1, "hello").await,
        "demo Speaker: hello"
    );
    server.shutdown().await;
    let _server = start_at(adapter, &server.addr.to_string()).await;
    assert_eq!(
        said_and_printed(&mut demo, &url, 2, "again").await,
        "demo Speaker: again"
    );
    demo.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_client_demo_prints_room_messages_across_restarts() {
    client_demo_prints_room_messages_across_restarts(Adapter::Warp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_client_demo_prints_room_messages_across_restarts() {
    client_demo_prints_room_messages_across_restarts(Adapter::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_prints_the_usage_and_a_missing_flag_exits_2() {
    let demo = env!("CARGO_BIN_EXE_client-demo");
    let (code, stdout, _) = run_to_end(demo, &["--help"], &[]).await;
    assert_eq!(code, Some(0));
    assert!(stdout.contains("--url <URL>"), "{stdout}");
    let (code, _, stderr) = run_to_end(demo, &["--room", "r"], &[]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--url <URL>"), "{stderr}");
}
