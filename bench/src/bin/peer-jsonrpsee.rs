//! Peer: jsonrpsee's WebSocket server, written as its README and pub/sub broadcast
//! example show: `bench_echo` (returns its parameter), `subscribe_tick` (a subscription
//! fed by a tokio broadcast channel, notifications `bench_tick`), `bench_fanout` (sends
//! its parameter into the channel). Defaults, except `max_connections` (default 100),
//! raised so that the 1000-member and 10 000-idle scenarios can run at all, and the
//! channel sized for the 200-message burst.

use std::sync::Arc;

use clap::Parser;
use jsonrpsee::core::server::SubscriptionMessage;
use jsonrpsee::server::{RpcModule, Server, ServerConfig};
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::Value;
use tokio::sync::broadcast;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (tx, _) = broadcast::channel::<Arc<Value>>(1024);
    let mut module = RpcModule::new(tx);
    module.register_method("bench_echo", |params, _, _| params.one::<Value>())?;
    module.register_method("bench_fanout", |params, tx, _| {
        let v: Value = params.one()?;
        let _ = tx.send(Arc::new(v));
        Ok::<_, ErrorObjectOwned>(())
    })?;
    module.register_subscription(
        "subscribe_tick",
        "bench_tick",
        "unsubscribe_tick",
        |_params, pending, tx, _| async move {
            let mut rx = tx.subscribe();
            let sink = pending.accept().await?;
            loop {
                tokio::select! {
                    _ = sink.closed() => break,
                    item = rx.recv() => match item {
                        Ok(v) => {
                            let msg: SubscriptionMessage = serde_json::value::to_raw_value(&*v)?.into();
                            if sink.send(msg).await.is_err() {
                                break;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
            Ok(())
        },
    )?;
    let config = ServerConfig::builder().max_connections(20_000).build();
    let server = Server::builder()
        .set_config(config)
        .build(&args.addr)
        .await?;
    zocket_bench::print_listening(server.local_addr()?);
    let handle = server.start(module);
    handle.stopped().await;
    Ok(())
}
