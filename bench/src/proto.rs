//! The three wire protocols the load generator speaks, reduced to what the scenarios
//! need: echo RPC, join a room, fan-out to a room, and recognising the frames that come
//! back. Parsing is by substring on the generator side on purpose: the generator must
//! stay cheaper than any server it drives, so it never builds a JSON tree.

use clap::ValueEnum;

/// A wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// Zocket v1: `{"type":..,"payload":..,"rpcId":..}` (reference, floor, raw axum).
    Zocket,
    /// Socket.IO over Engine.IO v4, websocket transport (socketioxide).
    Socketio,
    /// JSON-RPC 2.0 with subscriptions (jsonrpsee).
    Jsonrpc,
}

/// What a server frame means to the generator.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// The answer to request number `id` (an RPC result or an ack).
    Reply(u64),
    /// A fan-out event carrying the sequence number and the send time (ns since the
    /// generator's epoch).
    Tick { seq: u64, t: u64 },
    /// An Engine.IO ping: must be answered with `3`.
    Ping,
    /// Anything else (welcome, rooms.joined, subscription ids, ...).
    Other,
}

impl Proto {
    /// The WebSocket URL at `addr`.
    pub fn url(self, addr: &str) -> String {
        match self {
            Proto::Zocket | Proto::Jsonrpc => format!("ws://{addr}/"),
            Proto::Socketio => format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
        }
    }

    /// The echo request with id `id` and payload object `payload` (a JSON object text).
    pub fn echo(self, id: u64, payload: &str) -> String {
        match self {
            Proto::Zocket => {
                format!(r#"{{"type":"bench.echo","payload":{payload},"rpcId":"{id}"}}"#)
            }
            Proto::Socketio => format!(r#"42{id}["echo",{payload}]"#),
            Proto::Jsonrpc => {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"bench_echo","params":[{payload}]}}"#
                )
            }
        }
    }

    /// Join `room` (Zocket `rooms.join`, Socket.IO `join`, JSON-RPC `subscribe_tick`).
    pub fn join(self, id: u64, room: &str) -> String {
        match self {
            Proto::Zocket => {
                format!(r#"{{"type":"rooms.join","payload":{{"roomId":"{room}"}},"rpcId":"{id}"}}"#)
            }
            Proto::Socketio => format!(r#"42{id}["join","{room}"]"#),
            Proto::Jsonrpc => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"subscribe_tick","params":["{room}"]}}"#
            ),
        }
    }

    /// Ask the server to send a tick (`{roomId, seq, t, pad}`) to every member of `room`.
    pub fn fanout(self, id: u64, room: &str, seq: u64, t: u64, pad: &str) -> String {
        let body = format!(r#"{{"roomId":"{room}","seq":{seq},"t":{t},"pad":"{pad}"}}"#);
        match self {
            Proto::Zocket => {
                format!(r#"{{"type":"bench.fanout","payload":{body},"rpcId":"{id}"}}"#)
            }
            Proto::Socketio => format!(r#"42{id}["fanout",{body}]"#),
            Proto::Jsonrpc => {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"bench_fanout","params":[{body}]}}"#
                )
            }
        }
    }

    /// The first frame to send after the WebSocket upgrade, if the protocol has one.
    pub fn hello(self) -> Option<&'static str> {
        match self {
            Proto::Socketio => Some("40"),
            _ => None,
        }
    }

    /// Whether `text` is the frame that completes the session set-up (Zocket's
    /// `__welcome`, Socket.IO's namespace `40{..}`); JSON-RPC has none.
    pub fn is_ready(self, text: &str) -> bool {
        match self {
            Proto::Zocket => text.contains(r#""type":"__welcome""#),
            Proto::Socketio => text.starts_with("40"),
            Proto::Jsonrpc => true,
        }
    }

    /// Classify one server text frame.
    pub fn classify(self, text: &str) -> Incoming {
        match self {
            Proto::Zocket => {
                if text.starts_with(r#"{"type":"__rpc_res""#)
                    || text.starts_with(r#"{"type":"__rpc_err""#)
                {
                    return field_str_u64(text, r#""rpcId":""#)
                        .map_or(Incoming::Other, Incoming::Reply);
                }
                if text.starts_with(r#"{"type":"bench.tick""#) {
                    return tick(text);
                }
                Incoming::Other
            }
            Proto::Socketio => {
                let b = text.as_bytes();
                if b == b"2" {
                    return Incoming::Ping;
                }
                if let Some(rest) = text.strip_prefix("43") {
                    return leading_u64(rest).map_or(Incoming::Other, Incoming::Reply);
                }
                if text.starts_with(r#"42["tick""#) {
                    return tick(text);
                }
                Incoming::Other
            }
            Proto::Jsonrpc => {
                if text.contains(r#""method":"bench_tick""#) {
                    return tick(text);
                }
                field_u64(text, r#""id":"#).map_or(Incoming::Other, Incoming::Reply)
            }
        }
    }
}

fn tick(text: &str) -> Incoming {
    match (field_u64(text, r#""seq":"#), field_u64(text, r#""t":"#)) {
        (Some(seq), Some(t)) => Incoming::Tick { seq, t },
        _ => Incoming::Other,
    }
}

/// The decimal number right after `key`.
fn field_u64(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    leading_u64(&text[at..])
}

/// The decimal number inside the string right after `key` (which ends with `"`).
fn field_str_u64(text: &str, key: &str) -> Option<u64> {
    field_u64(text, key)
}

fn leading_u64(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    s[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_replies_and_ticks() {
        let z = Proto::Zocket;
        assert_eq!(
            z.classify(r#"{"type":"__rpc_res","payload":{"a":1},"rpcId":"17"}"#),
            Incoming::Reply(17)
        );
        assert_eq!(
            z.classify(r#"{"type":"__rpc_res","rpcId":"3"}"#),
            Incoming::Reply(3)
        );
        assert_eq!(
            z.classify(r#"{"type":"bench.tick","payload":{"roomId":"r","seq":4,"t":99,"pad":""}}"#),
            Incoming::Tick { seq: 4, t: 99 }
        );
        assert_eq!(
            z.classify(r#"{"type":"rooms.joined","payload":{}}"#),
            Incoming::Other
        );
        let s = Proto::Socketio;
        assert_eq!(s.classify(r#"4312[{"data":"x"}]"#), Incoming::Reply(12));
        assert_eq!(s.classify("2"), Incoming::Ping);
        assert_eq!(
            s.classify(r#"42["tick",{"roomId":"r","seq":1,"t":5,"pad":""}]"#),
            Incoming::Tick { seq: 1, t: 5 }
        );
        let j = Proto::Jsonrpc;
        assert_eq!(
            j.classify(r#"{"jsonrpc":"2.0","id":8,"result":{"data":"x"}}"#),
            Incoming::Reply(8)
        );
        assert_eq!(
            j.classify(r#"{"jsonrpc":"2.0","method":"bench_tick","params":{"subscription":"ab","result":{"roomId":"r","seq":2,"t":7,"pad":""}}}"#),
            Incoming::Tick { seq: 2, t: 7 }
        );
    }
}
