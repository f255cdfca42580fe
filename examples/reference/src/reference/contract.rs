//! The reference app's contract: one marker type per incoming message
//! ([`messages`]) and per outgoing event ([`events`]), plus the data types they carry.
//!
//! Server and clients share these types, so both ends agree on names and shapes at
//! compile time. Field names travel in camelCase (`targetUserId`, `roomId`,
//! `userName`), timestamps are RFC 3339 strings, and absent optional fields get the
//! defaults of REFERENCE_APP.md.
//!
//! Several names exist in both directions (`system.announcement`, `chat.private`,
//! `chat.room`, `rooms.message`): the incoming one is in [`messages`], the outgoing one
//! in [`events`].
//!
//! ```
//! use zocket_core::{Event, Message};
//! use zocket_examples::reference::contract::{events, messages, RoomMessageIn};
//!
//! assert_eq!(<messages::RoomsMessage as Message>::NAME, "rooms.message");
//! assert_eq!(<events::RoomsMessage as Event>::NAME, "rooms.message");
//! let input: RoomMessageIn = serde_json::from_str(r#"{"roomId":"lobby","content":"hi"}"#).unwrap();
//! assert_eq!(input, RoomMessageIn::new("lobby", "hi"));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zocket_core::{ClientId, Reject};

/// The largest `ms` accepted by `slow.sleep`.
pub const MAX_SLEEP_MS: u64 = 30_000;

/// The current time as an RFC 3339 string (UTC), as every timestamp of the app.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

fn default_ping() -> String {
    "ping".to_owned()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An input with no fields (`{}`); any object, `null` or an absent payload is accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Input of `echo.ping` and `test.compute`: `{message?: string = "ping"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingIn {
    /// The text; `"ping"` when absent.
    #[serde(default = "default_ping")]
    pub message: String,
}

impl Default for PingIn {
    fn default() -> Self {
        Self {
            message: default_ping(),
        }
    }
}

impl PingIn {
    /// An input with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Payload of `echo.pong`: `{reply}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// `"pong: " + message`.
    pub reply: String,
}

/// Input of `greet`: `{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreetIn {
    /// Who to greet.
    pub name: String,
}

impl GreetIn {
    /// An input with this name.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// Input of the `system.announcement` message: `{message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnouncementIn {
    /// The announcement's text.
    pub message: String,
}

impl AnnouncementIn {
    /// An input with this text.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Payload of the `system.announcement` event: `{message, from, timestamp}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The announcement's text.
    pub message: String,
    /// The announcer's `userName`.
    pub from: String,
    /// When it was sent (RFC 3339).
    pub timestamp: String,
}

/// Input of the `chat.private` message: `{targetUserId, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateMessageIn {
    /// The recipient's client id.
    pub target_user_id: ClientId,
    /// The text.
    pub message: String,
}

impl PrivateMessageIn {
    /// An input for this recipient and text.
    pub fn new(target_user_id: impl Into<ClientId>, message: impl Into<String>) -> Self {
        Self {
            target_user_id: target_user_id.into(),
            message: message.into(),
        }
    }
}

/// Payload of the `chat.private` event: `{from, message, timestamp}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateMessage {
    /// The sender's `userName`.
    pub from: String,
    /// The text.
    pub message: String,
    /// When it was sent (RFC 3339).
    pub timestamp: String,
}

/// Input of the `chat.room` message: `{roomId, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomChatIn {
    /// The room.
    pub room_id: String,
    /// The text.
    pub message: String,
}

impl RoomChatIn {
    /// An input for this room and text.
    pub fn new(room_id: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            room_id: room_id.into(),
            message: message.into(),
        }
    }
}

/// Payload of the `chat.room` event: `{roomId, from, message, timestamp}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomChat {
    /// The room.
    pub room_id: String,
    /// The sender's `userName`.
    pub from: String,
    /// The text.
    pub message: String,
    /// When it was sent (RFC 3339).
    pub timestamp: String,
}

/// The kind of a notification: `"info"`, `"warning"` or `"error"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    /// `"info"`.
    Info,
    /// `"warning"`.
    Warning,
    /// `"error"`.
    Error,
}

/// Input of `notification.send`:
/// `{type, message, targets?: string[], rooms?: string[], broadcast?: bool}`.
///
/// Delivery precedence: `broadcast` if true, else non-empty `targets`, else non-empty
/// `rooms`, else nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationSendIn {
    /// The kind.
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    /// The text.
    pub message: String,
    /// Client ids to notify (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ClientId>,
    /// Rooms to notify (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<String>,
    /// Notify everyone (absent: false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub broadcast: bool,
}

impl NotificationSendIn {
    /// A notification that goes nowhere yet; set `targets`, `rooms` or `broadcast`.
    pub fn new(kind: NotificationKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            targets: Vec::new(),
            rooms: Vec::new(),
            broadcast: false,
        }
    }
}

/// Payload of `notification.receive`: `{type, message, timestamp}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The kind.
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    /// The text.
    pub message: String,
    /// When it was sent (RFC 3339).
    pub timestamp: String,
}

/// `{clientId}`: the result of `connection.getClientId` and the payload of
/// `connection.clientId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIdInfo {
    /// The caller's connection id.
    pub client_id: ClientId,
}

/// Input of `rooms.join` and `rooms.leave`: `{roomId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomIn {
    /// The room.
    pub room_id: String,
}

impl RoomIn {
    /// An input for this room.
    pub fn new(room_id: impl Into<String>) -> Self {
        Self {
            room_id: room_id.into(),
        }
    }
}

/// Payload of `rooms.joined` and `rooms.left`: `{roomId, userName}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMembership {
    /// The room.
    pub room_id: String,
    /// Who joined or left.
    pub user_name: String,
}

/// Input of the `rooms.message` message: `{roomId, content}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMessageIn {
    /// The room (the caller must be a member).
    pub room_id: String,
    /// The text.
    pub content: String,
}

impl RoomMessageIn {
    /// An input for this room and text.
    pub fn new(room_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            room_id: room_id.into(),
            content: content.into(),
        }
    }
}

/// Payload of the `rooms.message` event: `{roomId, userName, content, timestamp}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMessage {
    /// The room.
    pub room_id: String,
    /// The sender's `userName`.
    pub user_name: String,
    /// The text.
    pub content: String,
    /// When it was sent (RFC 3339).
    pub timestamp: String,
}

/// Payload of `test.result`: `{step1, step2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// `"mw1-" + message`.
    pub step1: String,
    /// `"mw2-" + step1`.
    pub step2: String,
}

/// Payload of `test.admin`: `{ok: true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminOk {
    /// Always `true`.
    pub ok: bool,
}

/// Input of `bench.fanout` and payload of `bench.tick`: `{roomId, ...}`, every other
/// field kept as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fanout {
    /// The room to send `bench.tick` to.
    pub room_id: String,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Fanout {
    /// A fan-out to this room with no extra fields.
    pub fn new(room_id: impl Into<String>) -> Self {
        Self {
            room_id: room_id.into(),
            extra: Map::new(),
        }
    }

    /// Add an extra field.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// Input of `slow.sleep`: `{ms}`, at most [`MAX_SLEEP_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SleepIn {
    /// How long to wait, in milliseconds.
    pub ms: u64,
}

/// Result of `rooms.members`: the room's members on every node, sorted, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMembers {
    /// The members' client ids, sorted.
    pub members: Vec<ClientId>,
    /// The member count (from the hub's own count, so both answers are checked).
    pub count: usize,
}

/// Input of `connection.isConnected`: `{clientId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIn {
    /// The client.
    pub client_id: ClientId,
}

fn default_kick_code() -> u16 {
    4000
}

/// Input of `admin.disconnect`: `{clientId, code?: number = 4000, reason?: string = ""}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisconnectIn {
    /// The client to close, on whichever node it is.
    pub client_id: ClientId,
    /// The close code: 1000, 1001, 1008, 1011 or 3000-4999 (else `INVALID_INPUT`).
    #[serde(default = "default_kick_code")]
    pub code: u16,
    /// The close reason, at most 123 bytes (else `INVALID_INPUT`).
    #[serde(default)]
    pub reason: String,
}

/// Incoming messages (client → server), one marker type per route.
pub mod messages {
    use super::*;
    use zocket_core::Message;

    macro_rules! message {
        ($(#[$doc:meta])* $ty:ident = $name:literal: $input:ty => $output:ty) => {
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub enum $ty {}
            impl Message for $ty {
                const NAME: &'static str = $name;
                type Input = $input;
                type Output = $output;
            }
        };
    }

    message!(
        /// `echo.ping`: sends `echo.pong {reply: "pong: " + message}` to the caller.
        EchoPing = "echo.ping": PingIn => ()
    );
    message!(
        /// `greet`: returns `"Hello, <name>!"`.
        Greet = "greet": GreetIn => String
    );
    message!(
        /// `log`: the server logs the string.
        Log = "log": String => ()
    );
    message!(
        /// `delayedEcho`: waits 50 ms, returns `"Echo: <input>"`.
        DelayedEcho = "delayedEcho": String => String
    );
    message!(
        /// `trigger`: broadcasts the event `message` with the input.
        Trigger = "trigger": String => ()
    );
    message!(
        /// `system.announcement`: admin or moderator only (else `FORBIDDEN`); broadcasts
        /// the `system.announcement` event.
        SystemAnnouncement = "system.announcement": AnnouncementIn => ()
    );
    message!(
        /// `chat.private`: sends the `chat.private` event to one client id.
        ChatPrivate = "chat.private": PrivateMessageIn => ()
    );
    message!(
        /// `chat.room`: sends the `chat.room` event to a room (membership not required).
        ChatRoom = "chat.room": RoomChatIn => ()
    );
    message!(
        /// `notification.send`: admin or moderator only; sends `notification.receive`.
        NotificationSend = "notification.send": NotificationSendIn => ()
    );
    message!(
        /// `connection.getClientId`: sends `connection.clientId` to the caller and returns
        /// the same `{clientId}`.
        GetClientId = "connection.getClientId": Empty => ClientIdInfo
    );
    message!(
        /// `rooms.join`: joins and sends `rooms.joined` to the room (only when not a
        /// member yet); returns the caller's rooms, sorted.
        RoomsJoin = "rooms.join": RoomIn => Vec<String>
    );
    message!(
        /// `rooms.leave`: sends `rooms.left` to the room, then leaves (only when a
        /// member); returns the caller's rooms, sorted.
        RoomsLeave = "rooms.leave": RoomIn => Vec<String>
    );
    message!(
        /// `rooms.message`: members only (else `FORBIDDEN`); sends the `rooms.message`
        /// event to the room.
        RoomsMessage = "rooms.message": RoomMessageIn => ()
    );
    message!(
        /// `rooms.list`: returns the caller's rooms, sorted.
        RoomsList = "rooms.list": Empty => Vec<String>
    );
    message!(
        /// `rooms.members`: the room's members on every node of the cluster (with the
        /// in-memory hub: this process), sorted, and their count.
        RoomsMembers = "rooms.members": RoomIn => RoomMembers
    );
    message!(
        /// `connection.isConnected`: whether that client id is connected to any node.
        IsConnected = "connection.isConnected": ClientIn => bool
    );
    message!(
        /// `admin.disconnect`: admin or moderator only (else `FORBIDDEN`); closes that
        /// client, on whichever node it is, with the code and reason; returns whether a
        /// node held it.
        AdminDisconnect = "admin.disconnect": DisconnectIn => bool
    );
    message!(
        /// `test.compute`: two middlewares in order, then `test.result` to the caller.
        TestCompute = "test.compute": PingIn => ()
    );
    message!(
        /// `test.adminOnly`: admin only (else `FORBIDDEN`); sends `test.admin {ok: true}`.
        TestAdminOnly = "test.adminOnly": Empty => ()
    );
    message!(
        /// `bench.echo`: returns its input unchanged.
        BenchEcho = "bench.echo": Value => Value
    );
    message!(
        /// `bench.fanout`: sends `bench.tick` (the whole input) to the room.
        BenchFanout = "bench.fanout": Fanout => ()
    );
    message!(
        /// `fail.panic`: the handler panics; the caller gets `INTERNAL`.
        FailPanic = "fail.panic": Empty => ()
    );
    message!(
        /// `fail.error`: fails with code `TEAPOT`, message `"I'm a teapot"` and data
        /// `{"hint":"try coffee"}`.
        FailError = "fail.error": Empty => ()
    );

    /// `slow.sleep`: waits `ms` milliseconds and returns `ms`; over
    /// [`MAX_SLEEP_MS`] it is `INVALID_INPUT`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum SlowSleep {}
    impl Message for SlowSleep {
        const NAME: &'static str = "slow.sleep";
        type Input = SleepIn;
        type Output = u64;

        fn validate(input: &SleepIn) -> Result<(), Reject> {
            if input.ms > MAX_SLEEP_MS {
                let issue = format!("must be at most {MAX_SLEEP_MS}, got {}", input.ms);
                return Err(Reject::invalid_field("ms", issue));
            }
            Ok(())
        }
    }
}

/// Outgoing events (server → client), one marker type per name.
pub mod events {
    use super::*;
    use zocket_core::Event;

    macro_rules! event {
        ($(#[$doc:meta])* $ty:ident = $name:literal: $payload:ty) => {
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub enum $ty {}
            impl Event for $ty {
                const NAME: &'static str = $name;
                type Payload = $payload;
            }
        };
    }

    event!(
        /// `echo.pong`: `{reply}`.
        EchoPong = "echo.pong": Pong
    );
    event!(
        /// `message`: a bare string (sent by `trigger` to everyone).
        MessageEvent = "message": String
    );
    event!(
        /// `system.announcement`: `{message, from, timestamp}`.
        SystemAnnouncement = "system.announcement": Announcement
    );
    event!(
        /// `chat.private`: `{from, message, timestamp}`.
        ChatPrivate = "chat.private": PrivateMessage
    );
    event!(
        /// `chat.room`: `{roomId, from, message, timestamp}`.
        ChatRoom = "chat.room": RoomChat
    );
    event!(
        /// `rooms.joined`: `{roomId, userName}`.
        RoomsJoined = "rooms.joined": RoomMembership
    );
    event!(
        /// `rooms.left`: `{roomId, userName}`.
        RoomsLeft = "rooms.left": RoomMembership
    );
    event!(
        /// `rooms.message`: `{roomId, userName, content, timestamp}`.
        RoomsMessage = "rooms.message": RoomMessage
    );
    event!(
        /// `notification.receive`: `{type, message, timestamp}`.
        NotificationReceive = "notification.receive": Notification
    );
    event!(
        /// `connection.clientId`: `{clientId}`.
        ConnectionClientId = "connection.clientId": ClientIdInfo
    );
    event!(
        /// `test.result`: `{step1, step2}`.
        TestResultEvent = "test.result": TestResult
    );
    event!(
        /// `test.admin`: `{ok: true}`.
        TestAdmin = "test.admin": AdminOk
    );
    event!(
        /// `bench.tick`: the `bench.fanout` input, unchanged.
        BenchTick = "bench.tick": Fanout
    );
}
