//! The Zocket protocol subset the floor and the raw axum peer serve: `bench.echo`,
//! `rooms.join` and `bench.fanout` (→ `bench.tick`), decoded by borrowing from the frame
//! text as zocket-core does, encoded by appending to one string.

use serde::Deserialize;
use serde_json::value::RawValue;

/// What one client frame asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Send this reply to the caller.
    Reply(String),
    /// Join `room`, then answer `rpc_id` (if any) with the caller's rooms.
    Join {
        room: &'a str,
        rpc_id: Option<&'a str>,
    },
    /// Send `event` to every member of `room`, then `reply` (if any) to the caller.
    Fanout {
        room: &'a str,
        event: String,
        reply: Option<String>,
    },
    /// Nothing to do (unknown type, not an RPC, malformed).
    Nothing,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(rename = "rpcId", borrow, default)]
    rpc_id: Option<&'a str>,
}

#[derive(Deserialize)]
struct RoomRef<'a> {
    #[serde(rename = "roomId", borrow)]
    room_id: &'a str,
}

/// `{"type":"__rpc_res","payload":..,"rpcId":".."}`; no `payload` for unit results.
pub fn reply(rpc_id: &str, payload: Option<&str>) -> String {
    let mut s = String::with_capacity(48 + rpc_id.len() + payload.map_or(0, str::len));
    s.push_str(r#"{"type":"__rpc_res""#);
    if let Some(p) = payload {
        s.push_str(r#","payload":"#);
        s.push_str(p);
    }
    s.push_str(r#","rpcId":""#);
    s.push_str(rpc_id);
    s.push_str(r#""}"#);
    s
}

/// The `__welcome` frame.
pub fn welcome(client_id: u64) -> String {
    format!(r#"{{"type":"__welcome","payload":{{"clientId":"{client_id}","version":"1"}}}}"#)
}

/// Decode one client frame.
pub fn decode(text: &str) -> Action<'_> {
    let Ok(frame) = serde_json::from_str::<Frame<'_>>(text) else {
        return Action::Nothing;
    };
    match frame.kind {
        "bench.echo" => match frame.rpc_id {
            Some(r) => Action::Reply(reply(r, Some(frame.payload.map_or("null", RawValue::get)))),
            None => Action::Nothing,
        },
        "rooms.join" => match frame
            .payload
            .and_then(|p| serde_json::from_str::<RoomRef<'_>>(p.get()).ok())
        {
            Some(room) => Action::Join {
                room: room.room_id,
                rpc_id: frame.rpc_id,
            },
            None => Action::Nothing,
        },
        "bench.fanout" => {
            let Some(payload) = frame.payload else {
                return Action::Nothing;
            };
            let Ok(room) = serde_json::from_str::<RoomRef<'_>>(payload.get()) else {
                return Action::Nothing;
            };
            let mut event = String::with_capacity(40 + payload.get().len());
            event.push_str(r#"{"type":"bench.tick","payload":"#);
            event.push_str(payload.get());
            event.push('}');
            Action::Fanout {
                room: room.room_id,
                event,
                reply: frame.rpc_id.map(|r| reply(r, None)),
            }
        }
        _ => Action::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_subset() {
        assert_eq!(
            decode(r#"{"type":"bench.echo","payload":{"data":"x"},"rpcId":"3"}"#),
            Action::Reply(r#"{"type":"__rpc_res","payload":{"data":"x"},"rpcId":"3"}"#.into())
        );
        assert_eq!(
            decode(r#"{"type":"rooms.join","payload":{"roomId":"r"},"rpcId":"1"}"#),
            Action::Join {
                room: "r",
                rpc_id: Some("1")
            }
        );
        assert_eq!(
            decode(r#"{"type":"bench.fanout","payload":{"roomId":"r","seq":1},"rpcId":"2"}"#),
            Action::Fanout {
                room: "r",
                event: r#"{"type":"bench.tick","payload":{"roomId":"r","seq":1}}"#.into(),
                reply: Some(r#"{"type":"__rpc_res","rpcId":"2"}"#.into()),
            }
        );
        assert_eq!(decode("not json"), Action::Nothing);
    }
}
