//! The chat server side: context, presence directory, middleware and handlers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use zocket_core::{ClientId, Connect, Context, Cx, Disconnect, Input, Middleware, Reject, Router};

use super::contract::{
    self, Empty, Join, Leave, ListMembers, Me, Member, Members, MembersChanged, MessagePosted,
    Post, Presence, PresenceChanged, PresenceKind, Private, PrivateIn, PrivateMessage,
    PrivateReceived, RoomIn, RoomMessage, SendIn, SetTyping, Typing, TypingChanged, TypingIn,
};

/// The name of a user who gave none.
pub const DEFAULT_USER_NAME: &str = "guest";

/// The chat's handshake parameters (query string or headers).
#[derive(Debug, Deserialize)]
pub struct ChatHeaders {
    /// `userName`: trimmed, 1 to 32 characters, no control characters; absent means
    /// `"guest"`. Anything else is refused with HTTP 400 `INVALID_HEADERS`.
    #[serde(rename = "userName", default)]
    pub user_name: Option<UserName>,
}

/// A checked user name (see [`contract::check_name`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct UserName(String);

impl TryFrom<String> for UserName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        contract::check_name(&value).map(UserName)
    }
}

impl UserName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The per-connection context of the chat.
#[derive(Debug)]
pub struct ChatUser {
    me: Member,
}

impl ChatUser {
    /// The user as others see them.
    pub fn member(&self) -> &Member {
        &self.me
    }
}

impl Context for ChatUser {
    type Headers = ChatHeaders;
    type State = ChatState;

    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        let (headers, info) = (conn.headers, conn.info);
        let user_name = headers
            .user_name
            .map(|n| n.0)
            .unwrap_or_else(|| DEFAULT_USER_NAME.to_owned());
        tracing::info!(client_id = %info.client_id, user_name, "chat user connected");
        let me = Member {
            user_name,
            client_id: info.client_id.clone(),
        };
        // Listed from the handshake on: private messages reach a user who has not spoken.
        conn.state.add_user(me.clone());
        Ok(Self { me })
    }

    async fn disconnect(&self, end: Disconnect<'_, Self>) {
        let info = end.info;
        tracing::info!(client_id = %info.client_id, user_name = self.me.user_name, reason = ?info.reason, "chat user disconnected");
        for members in end.state.remove_user(&self.me.client_id) {
            let room = members.room.clone();
            let _ = end
                .server
                .send::<PresenceChanged>(Presence {
                    room: room.clone(),
                    member: self.me.clone(),
                    kind: PresenceKind::Left,
                })
                .to_room(&room);
            let _ = end.server.send::<MembersChanged>(members).to_room(&room);
        }
    }
}

/// Who is connected and who is in which room, with names: the chat's application state.
/// The hub delivers; this directory is what member lists and private-message targets
/// are read from.
#[derive(Debug, Default)]
pub struct ChatState {
    inner: Mutex<Directory>,
}

#[derive(Debug, Default)]
struct Directory {
    users: HashMap<ClientId, Member>,
    rooms: HashMap<String, BTreeSet<Member>>,
}

impl ChatState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add_user(&self, member: Member) {
        self.lock().users.insert(member.client_id.clone(), member);
    }

    /// Forget a user; the member lists of the rooms they were in, without them.
    fn remove_user(&self, id: &ClientId) -> Vec<Members> {
        let mut dir = self.lock();
        let Some(member) = dir.users.remove(id) else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        dir.rooms.retain(|room, set| {
            if set.remove(&member) {
                changed.push(Members {
                    room: room.clone(),
                    members: set.iter().cloned().collect(),
                });
            }
            !set.is_empty()
        });
        changed.sort_by(|a, b| a.room.cmp(&b.room));
        changed
    }

    fn user(&self, id: &ClientId) -> Option<Member> {
        self.lock().users.get(id).cloned()
    }

    fn join(&self, room: &str, member: &Member) -> Members {
        let mut dir = self.lock();
        let set = dir.rooms.entry(room.to_owned()).or_default();
        set.insert(member.clone());
        Members {
            room: room.to_owned(),
            members: set.iter().cloned().collect(),
        }
    }

    fn leave(&self, room: &str, member: &Member) -> Members {
        let mut dir = self.lock();
        let members = match dir.rooms.get_mut(room) {
            Some(set) => {
                set.remove(member);
                let list: Vec<Member> = set.iter().cloned().collect();
                if list.is_empty() {
                    dir.rooms.remove(room);
                }
                list
            }
            None => Vec::new(),
        };
        Members {
            room: room.to_owned(),
            members,
        }
    }

    /// The members of a room, sorted by name then client id.
    pub fn members(&self, room: &str) -> Members {
        Members {
            room: room.to_owned(),
            members: self
                .lock()
                .rooms
                .get(room)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// How many users are listed (connected and having sent at least one message).
    pub fn user_count(&self) -> usize {
        self.lock().users.len()
    }
}

/// What every chat handler receives: the caller and the directory.
struct Session {
    me: Member,
    state: Arc<ChatState>,
}

/// Hands handlers the directory (the application state) along with the caller.
struct Attach;

impl Middleware<ChatUser, ChatState> for Attach {
    type Out = Session;
    async fn run(
        &self,
        cx: &Cx<ChatUser, ChatState>,
        _input: &Input<'_>,
    ) -> Result<Session, Reject> {
        Ok(Session {
            me: cx.me.clone(),
            state: cx.state_arc(),
        })
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn require_member<C, S>(cx: &Cx<C, S>, room: &str) -> Result<(), Reject> {
    if cx.rooms().has(room) {
        Ok(())
    } else {
        Err(Reject::forbidden(format!(
            "join room `{room}` before writing to it"
        )))
    }
}

async fn me(cx: Cx<Session, ChatState>, _input: Empty) -> Result<Member, Reject> {
    Ok(cx.me.clone())
}

async fn join(cx: Cx<Session, ChatState>, input: RoomIn) -> Result<Members, Reject> {
    let room = input.room;
    if !cx.rooms().join(&room) {
        return Ok(cx.state.members(&room));
    }
    let members = cx.state.join(&room, &cx.me);
    let _ = cx
        .send::<PresenceChanged>(Presence {
            room: room.clone(),
            member: cx.me.clone(),
            kind: PresenceKind::Joined,
        })
        .to_room(&room);
    let _ = cx.send::<MembersChanged>(members.clone()).to_room(&room);
    Ok(members)
}

async fn leave(cx: Cx<Session, ChatState>, input: RoomIn) -> Result<Vec<String>, Reject> {
    let room = input.room;
    if cx.rooms().has(&room) {
        let members = cx.state.leave(&room, &cx.me);
        let _ = cx
            .send::<PresenceChanged>(Presence {
                room: room.clone(),
                member: cx.me.clone(),
                kind: PresenceKind::Left,
            })
            .to_room(&room);
        cx.rooms().leave(&room);
        let _ = cx.send::<MembersChanged>(members).to_room(&room);
    }
    Ok(cx.rooms().current())
}

async fn list_members(cx: Cx<Session, ChatState>, input: RoomIn) -> Result<Members, Reject> {
    Ok(cx.state.members(&input.room))
}

async fn post(cx: Cx<Session, ChatState>, input: SendIn) -> Result<(), Reject> {
    require_member(&cx, &input.room)?;
    let room = input.room.clone();
    let _ = cx
        .send::<MessagePosted>(RoomMessage {
            room: input.room,
            from: cx.me.clone(),
            text: input.text,
            timestamp: now(),
        })
        .to_room(&room);
    Ok(())
}

async fn private(cx: Cx<Session, ChatState>, input: PrivateIn) -> Result<(), Reject> {
    let Some(to) = cx.state.user(&input.to) else {
        return Err(Reject::new(
            "UNKNOWN_USER",
            format!("no connected user has client id `{}`", input.to),
        ));
    };
    let mut recipients = vec![to.client_id.clone()];
    if to.client_id != cx.me.client_id {
        recipients.push(cx.me.client_id.clone());
    }
    let _ = cx
        .send::<PrivateReceived>(PrivateMessage {
            from: cx.me.clone(),
            to,
            text: input.text,
            timestamp: now(),
        })
        .to(recipients);
    Ok(())
}

async fn typing(cx: Cx<Session, ChatState>, input: TypingIn) -> Result<(), Reject> {
    require_member(&cx, &input.room)?;
    let room = input.room.clone();
    let _ = cx
        .send::<TypingChanged>(Typing {
            room: input.room,
            from: cx.me.clone(),
            typing: input.typing,
        })
        .to_room(&room);
    Ok(())
}

/// The chat router. See [`super::contract`] for the messages. Its state is a
/// [`ChatState`]: `Server::new(router())` starts with an empty one,
/// `Server::builder(router()).state(state)` uses a given one (to inspect it in tests).
pub fn router() -> Router<ChatUser> {
    Router::new().scope(Attach, |s| {
        s.on::<Me>(me)
            .on::<Join>(join)
            .on::<Leave>(leave)
            .on::<ListMembers>(list_members)
            .on::<Post>(post)
            .on::<Private>(private)
            .on::<SetTyping>(typing)
    })
}
