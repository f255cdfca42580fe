//! The chat contract: the messages a chat client sends and the events it receives.
//!
//! Shared unchanged by the server ([`super::router`]) and any typed client. The browser
//! page speaks the same names and shapes as plain JSON.
//!
//! | message | input | result |
//! |---|---|---|
//! | `chat.me` | `{}` | the caller as a [`Member`] |
//! | `chat.join` | `{room}` | the room's [`Members`]; `chat.presence` + `chat.members` to the room |
//! | `chat.leave` | `{room}` | the caller's remaining rooms; `chat.presence` + `chat.members` to the room |
//! | `chat.members` | `{room}` | the room's [`Members`] |
//! | `chat.send` | `{room, text}` | unit; `chat.message` to the room (sender included); not a member: `FORBIDDEN` |
//! | `chat.private` | `{to, text}` | unit; `chat.private` to the target and to the sender; unknown target: `UNKNOWN_USER` |
//! | `chat.typing` | `{room, typing}` | unit; `chat.typing` to the room (sender included); not a member: `FORBIDDEN` |

use serde::{Deserialize, Serialize};
use zocket_core::{ClientId, Event, Message, Reject};

/// The longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 32;
/// The longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// One connected user as others see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user's name (from the `userName` handshake parameter).
    pub user_name: String,
    /// The connection's id: the address of private messages.
    pub client_id: ClientId,
}

/// A room and who is in it, sorted by name then id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// The room.
    pub room: String,
    /// Its members.
    pub members: Vec<Member>,
}

/// Input of `chat.join`, `chat.leave` and `chat.members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomIn {
    /// The room name: 1 to 32 letters, digits, `-`, `_` or `.`.
    pub room: String,
}

impl RoomIn {
    /// A room input.
    pub fn new(room: impl Into<String>) -> Self {
        Self { room: room.into() }
    }
}

/// Input of `chat.send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendIn {
    /// The room to post to (the caller must be a member).
    pub room: String,
    /// The text: not blank, at most 2000 characters.
    pub text: String,
}

/// Input of `chat.private`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateIn {
    /// The target's client id.
    pub to: ClientId,
    /// The text: not blank, at most 2000 characters.
    pub text: String,
}

/// Input of `chat.typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingIn {
    /// The room the caller is typing in (the caller must be a member).
    pub room: String,
    /// Started (`true`) or stopped (`false`) typing. Default `true`.
    #[serde(default = "yes")]
    pub typing: bool,
}

fn yes() -> bool {
    true
}

/// Payload of the `chat.message` event: a message posted to a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMessage {
    /// The room.
    pub room: String,
    /// Who posted it.
    pub from: Member,
    /// The text, as posted.
    pub text: String,
    /// When the server received it (RFC 3339, UTC).
    pub timestamp: String,
}

/// Payload of the `chat.private` event: a private message, delivered to the target and
/// echoed to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateMessage {
    /// The sender.
    pub from: Member,
    /// The target.
    pub to: Member,
    /// The text.
    pub text: String,
    /// When the server received it (RFC 3339, UTC).
    pub timestamp: String,
}

/// What happened to a room's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceKind {
    /// The member joined the room.
    Joined,
    /// The member left the room (or disconnected).
    Left,
}

/// Payload of the `chat.presence` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The room.
    pub room: String,
    /// Who joined or left.
    pub member: Member,
    /// Joined or left.
    pub kind: PresenceKind,
}

/// Payload of the `chat.typing` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    /// The room.
    pub room: String,
    /// Who is typing.
    pub from: Member,
    /// Started or stopped.
    pub typing: bool,
}

/// `chat.me`: who the server thinks the caller is.
pub enum Me {}
impl Message for Me {
    const NAME: &'static str = "chat.me";
    type Input = Empty;
    type Output = Member;
}

/// The empty input `{}` (an absent payload is accepted too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `chat.join`: join a room. Joining a room one is in already changes nothing and
/// sends nothing; the result is the member list either way.
pub enum Join {}
impl Message for Join {
    const NAME: &'static str = "chat.join";
    type Input = RoomIn;
    type Output = Members;
    fn validate(input: &RoomIn) -> Result<(), Reject> {
        check_room("room", &input.room)
    }
}

/// `chat.leave`: leave a room; the result is the caller's remaining rooms, sorted.
pub enum Leave {}
impl Message for Leave {
    const NAME: &'static str = "chat.leave";
    type Input = RoomIn;
    type Output = Vec<String>;
    fn validate(input: &RoomIn) -> Result<(), Reject> {
        check_room("room", &input.room)
    }
}

/// `chat.members`: the member list of a room (anyone may ask).
pub enum ListMembers {}
impl Message for ListMembers {
    const NAME: &'static str = "chat.members";
    type Input = RoomIn;
    type Output = Members;
    fn validate(input: &RoomIn) -> Result<(), Reject> {
        check_room("room", &input.room)
    }
}

/// `chat.send`: post to a room the caller is in.
pub enum Post {}
impl Message for Post {
    const NAME: &'static str = "chat.send";
    type Input = SendIn;
    type Output = ();
    fn validate(input: &SendIn) -> Result<(), Reject> {
        check_room("room", &input.room)?;
        check_text("text", &input.text)
    }
}

/// `chat.private`: a private message to one client id.
pub enum Private {}
impl Message for Private {
    const NAME: &'static str = "chat.private";
    type Input = PrivateIn;
    type Output = ();
    fn validate(input: &PrivateIn) -> Result<(), Reject> {
        if input.to.as_str().is_empty() {
            return Err(issue("to", "must not be empty"));
        }
        check_text("text", &input.text)
    }
}

/// `chat.typing`: tell a room the caller started or stopped typing.
pub enum SetTyping {}
impl Message for SetTyping {
    const NAME: &'static str = "chat.typing";
    type Input = TypingIn;
    type Output = ();
    fn validate(input: &TypingIn) -> Result<(), Reject> {
        check_room("room", &input.room)
    }
}

/// Event `chat.message`: a room message.
pub enum MessagePosted {}
impl Event for MessagePosted {
    const NAME: &'static str = "chat.message";
    type Payload = RoomMessage;
}

/// Event `chat.private`: a private message (to the target and the sender).
pub enum PrivateReceived {}
impl Event for PrivateReceived {
    const NAME: &'static str = "chat.private";
    type Payload = PrivateMessage;
}

/// Event `chat.members`: a room's member list changed.
pub enum MembersChanged {}
impl Event for MembersChanged {
    const NAME: &'static str = "chat.members";
    type Payload = Members;
}

/// Event `chat.presence`: someone joined or left a room.
pub enum PresenceChanged {}
impl Event for PresenceChanged {
    const NAME: &'static str = "chat.presence";
    type Payload = Presence;
}

/// Event `chat.typing`: someone in a room started or stopped typing.
pub enum TypingChanged {}
impl Event for TypingChanged {
    const NAME: &'static str = "chat.typing";
    type Payload = Typing;
}

/// An `INVALID_INPUT` rejection naming the offending field, shaped like the router's
/// own (`data.issues[].path/message`).
fn issue(path: &str, message: &str) -> Reject {
    Reject::invalid_input(format!("invalid payload at `{path}`: {message}"))
        .with_data(serde_json::json!({ "issues": [{ "path": path, "message": message }] }))
}

/// A room name: 1 to [`MAX_ROOM_CHARS`] ASCII letters, digits, `-`, `_` or `.`.
pub fn check_room(path: &str, room: &str) -> Result<(), Reject> {
    if room.is_empty() {
        return Err(issue(path, "must not be empty"));
    }
    if room.chars().count() > MAX_ROOM_CHARS {
        return Err(issue(
            path,
            &format!("must be at most {MAX_ROOM_CHARS} characters"),
        ));
    }
    if !room
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(issue(
            path,
            "may only contain letters, digits, `-`, `_` and `.`",
        ));
    }
    Ok(())
}

/// A message text: not blank, at most [`MAX_TEXT_CHARS`] characters.
pub fn check_text(path: &str, text: &str) -> Result<(), Reject> {
    if text.trim().is_empty() {
        return Err(issue(path, "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(issue(
            path,
            &format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// A user name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
/// Returns the trimmed name.
pub fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}
