//! The chat server side: context, presence directory, middleware and handlers.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use zocket_core::{
    ClientId, CloseReason, Connect, Context, Cx, Disconnect, Input, Middleware, Reject, Router,
    ServerHandle,
};

use super::cluster::ChatCluster;
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
    /// The directory this user is listed in, to unlist them if the connection never
    /// runs (an upgrade that fails after the handshake), when no disconnect hook runs.
    directory: Arc<ChatState>,
    ended: AtomicBool,
}

impl Drop for ChatUser {
    fn drop(&mut self) {
        if *self.ended.get_mut() {
            return;
        }
        self.directory.remove_user(&self.me.client_id);
        if let (Some(c), Ok(rt)) = (
            self.directory.cluster.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            let id = self.me.client_id.clone();
            rt.spawn(async move { c.forget(&id).await });
        }
    }
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
        if let Some(c) = &conn.state.cluster {
            c.set_name(&me).await;
        }
        Ok(Self {
            me,
            directory: conn.state.clone(),
            ended: AtomicBool::new(false),
        })
    }

    async fn disconnect(&self, end: Disconnect<'_, Self>) {
        let info = end.info;
        tracing::info!(client_id = %info.client_id, user_name = self.me.user_name, reason = ?info.reason, "chat user disconnected");
        self.ended.store(true, Ordering::Relaxed);
        let state = end.state;
        if let Some(c) = &state.cluster {
            c.forget(&self.me.client_id).await;
        }
        let rooms = state.remove_user(&self.me.client_id);
        // A server going down disconnects everybody on it: this user did not leave, and
        // the pages see their own disconnect. After a restart, presence comes from the
        // new server (each page re-joins and gets the room's member list). Only the
        // member lists of other nodes of a cluster are brought up to date.
        let shutdown = info.reason == CloseReason::ServerShutdown;
        if shutdown && state.cluster.is_none() {
            return;
        }
        for members in rooms {
            let members = state
                .everywhere(end.server, members, Some(&self.me.client_id))
                .await;
            let room = members.room.clone();
            if !shutdown {
                let _ = end
                    .server
                    .send::<PresenceChanged>(Presence {
                        room: room.clone(),
                        member: self.me.clone(),
                        kind: PresenceKind::Left,
                    })
                    .to_room(&room);
            }
            let _ = end.server.send::<MembersChanged>(members).to_room(&room);
        }
    }
}

/// Who is connected and who is in which room, with names: the chat's application state.
/// The hub delivers; this directory is what member lists and private-message targets
/// are read from.
///
/// With [`ChatState::clustered`] (`chat --redis URL`) member lists and private-message
/// targets also include the users of the other chat processes of the cluster.
#[derive(Debug, Default)]
pub struct ChatState {
    inner: Mutex<Directory>,
    cluster: Option<ChatCluster>,
}

#[derive(Debug, Default)]
struct Directory {
    users: HashMap<ClientId, Member>,
    rooms: HashMap<String, BTreeSet<Member>>,
}

impl ChatState {
    /// A directory that also sees the users of the other processes of a cluster.
    pub fn clustered(cluster: ChatCluster) -> Self {
        Self {
            inner: Mutex::default(),
            cluster: Some(cluster),
        }
    }

    /// `local` (this process's member list of a room) completed with the other
    /// processes' members when clustered; `exclude` is left out.
    async fn everywhere(
        &self,
        server: &ServerHandle,
        local: Members,
        exclude: Option<&ClientId>,
    ) -> Members {
        match &self.cluster {
            Some(c) => c.members(server, local, exclude).await,
            None => local,
        }
    }

    /// A connected user by id, on this process or (clustered) another.
    async fn find_user(&self, server: &ServerHandle, id: &ClientId) -> Option<Member> {
        if let Some(m) = self.user(id) {
            return Some(m);
        }
        match &self.cluster {
            Some(c) => c.user(server, id).await,
            None => None,
        }
    }

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
    let server = cx.server();
    if !cx.rooms().join(&room)? {
        return Ok(cx
            .state
            .everywhere(&server, cx.state.members(&room), None)
            .await);
    }
    let members = cx
        .state
        .everywhere(&server, cx.state.join(&room, &cx.me), None)
        .await;
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
        let members = cx
            .state
            .everywhere(
                &cx.server(),
                cx.state.leave(&room, &cx.me),
                Some(&cx.me.client_id),
            )
            .await;
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
    Ok(cx
        .state
        .everywhere(&cx.server(), cx.state.members(&input.room), None)
        .await)
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
    let Some(to) = cx.state.find_user(&cx.server(), &input.to).await else {
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
