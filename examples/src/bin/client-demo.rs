//! `client-demo`: a native Zocket client against the reference server.
//!
//! ```text
//! cargo run -p zocket-examples --bin client-demo -- --url ws://127.0.0.1:3000/ --room lobby [--name Ada]
//! ```
//!
//! Connects (retrying until the server is up), calls `greet`, joins ROOM (and joins it
//! again after every reconnect), and prints every `rooms.message` it receives as one
//! stdout line `ROOM USERNAME: CONTENT`. Status goes to stderr. It keeps running across
//! server restarts until interrupted (Ctrl-C / SIGTERM).

use std::process::ExitCode;

use futures::StreamExt;
use zocket_client::{Client, ClientError, ConnectionState, Reconnect};
use zocket_examples::reference::contract::events::RoomsMessage;
use zocket_examples::reference::contract::messages::{Greet, RoomsJoin};
use zocket_examples::reference::contract::{GreetIn, RoomIn};

struct Args {
    url: String,
    room: String,
    name: Option<String>,
}

const USAGE: &str = "usage: client-demo --url URL --room ROOM [--name NAME]";

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut room = None;
    let mut name = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--room" => room = Some(value()?),
            "--name" => name = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(Args {
        url: url.ok_or_else(|| format!("--url is required\n{USAGE}"))?,
        room: room.ok_or_else(|| format!("--room is required\n{USAGE}"))?,
        name,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = Client::builder(&args.url)
        .reconnect(Reconnect::default().forever())
        .retry_initial_connect(true);
    if let Some(name) = &args.name {
        builder = builder.header("userName", name.clone());
    }
    let room = args.room.clone();
    let greeting_name = args.name.clone().unwrap_or_else(|| "client-demo".into());
    builder = builder.on_connect(move |client: Client| {
        let room = room.clone();
        let name = greeting_name.clone();
        async move {
            let hello = client.call::<Greet>(GreetIn::new(name)).await?;
            eprintln!(
                "connected as {}: {hello}",
                client
                    .client_id()
                    .as_ref()
                    .map_or("?", zocket_client::ClientId::as_str)
            );
            let rooms = client.call::<RoomsJoin>(RoomIn::new(room)).await?;
            eprintln!("in rooms {rooms:?}");
            Ok::<(), ClientError>(())
        }
    });
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("client-demo: {e}");
            return ExitCode::from(2);
        }
    };
    // Subscribe before connecting so no message is missed.
    let mut messages = client.subscribe::<RoomsMessage>();
    let mut state = client.state_watch();
    eprintln!("connecting to {}", args.url);
    if let Err(e) = client.connect().await {
        eprintln!("client-demo: cannot connect: {e}");
        return ExitCode::from(1);
    }
    let shutdown = zocket_examples::stop_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            changed = state.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *state.borrow_and_update();
                eprintln!("state: {now}");
                if now == ConnectionState::Closed {
                    eprintln!("client-demo: connection closed for good: {:?}", client.close_reason());
                    return ExitCode::from(1);
                }
            }
            msg = messages.next() => match msg {
                Some(Ok(m)) => println!("{} {}: {}", m.room_id, m.user_name, m.content),
                Some(Err(e)) => eprintln!("client-demo: bad rooms.message: {e}"),
                None => break,
            },
        }
    }
    client.close().await;
    ExitCode::SUCCESS
}
