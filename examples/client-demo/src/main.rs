//! `client-demo`: a native Zocket client against the reference server.
//!
//! ```text
//! cargo run -p zocket-example-client-demo -- --url ws://127.0.0.1:3000/ --room lobby [--name Ada]
//! ```
//!
//! Connects (retrying until the server is up), calls `greet`, joins ROOM (and joins it
//! again after every reconnect), and prints every `rooms.message` it receives as one
//! stdout line `ROOM USERNAME: CONTENT`. Status goes to stderr. It keeps running across
//! server restarts until interrupted (Ctrl-C / SIGTERM).

use std::process::ExitCode;

use clap::Parser;
use futures::StreamExt;
use zocket_client::{Client, ClientError, ConnectionState, Reconnect};
use zocket_examples::reference::contract::events::RoomsMessage;
use zocket_examples::reference::contract::messages::{Greet, RoomsJoin};
use zocket_examples::reference::contract::{GreetIn, RoomIn};

/// A native Zocket client of the reference server: joins ROOM and prints every
/// `rooms.message` as one stdout line `ROOM USERNAME: CONTENT`.
#[derive(Debug, Parser)]
#[command(name = "client-demo", args_override_self = true)]
struct Args {
    /// The reference server's WebSocket URL, e.g. ws://127.0.0.1:3000/.
    #[arg(long, value_name = "URL")]
    url: String,
    /// The room to join (again after every reconnect).
    #[arg(long, value_name = "ROOM")]
    room: String,
    /// The `userName` handshake header.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    // `--help`: the usage, exit 0; a missing or unknown argument: exit 2.
    let args = Args::parse();
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(a: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("client-demo").chain(a.iter().copied()))
    }

    #[test]
    fn url_and_room_are_required_name_is_not() {
        let args = parse(&["--url", "ws://127.0.0.1:1/", "--room=lobby"]).unwrap();
        assert_eq!(
            (args.url.as_str(), args.room.as_str(), args.name),
            ("ws://127.0.0.1:1/", "lobby", None)
        );
        let args = parse(&["--url", "u", "--room", "r", "--name", "Ada"]).unwrap();
        assert_eq!(args.name.as_deref(), Some("Ada"));
        let e = parse(&["--room", "r"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--url <URL>"), "{e}");
        assert_eq!(
            parse(&["--url", "u", "--room", "r", "--port", "1"])
                .unwrap_err()
                .kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            parse(&["--help"]).unwrap_err().kind(),
            ErrorKind::DisplayHelp
        );
    }
}
