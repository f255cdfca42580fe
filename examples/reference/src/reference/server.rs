//! The reference app's server side: context, middleware and handlers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zocket_core::{Connect, Context, Cx, Disconnect, Input, Middleware, Reject, Router};

use super::contract::{events, messages, *};

/// A user's role, from the `userRole` handshake header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `"admin"`.
    Admin,
    /// `"moderator"`.
    Moderator,
    /// `"user"` (the default).
    #[default]
    User,
}

impl Role {
    /// Admin or moderator.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Admin | Role::Moderator)
    }
}

fn default_user_name() -> String {
    DEFAULT_USER_NAME.to_owned()
}

/// The `userName` of a connection that sends none.
pub const DEFAULT_USER_NAME: &str = "User";

/// The handshake headers (all optional): `userName` (default `"User"`), `userRole`
/// (`admin`, `moderator` or `user`, default `user`; anything else is HTTP 400) and
/// `token` (`"bad"` is refused with HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefHeaders {
    /// The display name.
    #[serde(default = "default_user_name")]
    pub user_name: String,
    /// The role.
    #[serde(default)]
    pub user_role: Role,
    /// An optional token; `"bad"` is refused.
    #[serde(default)]
    pub token: Option<String>,
}

/// The connection context: `{ userName, userRole }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefCtx {
    /// The `userName` header.
    pub user_name: String,
    /// The `userRole` header.
    pub user_role: Role,
}

impl Context for RefCtx {
    type Headers = RefHeaders;
    type State = ();

    async fn connect(conn: Connect<'_, Self>) -> Result<Self, Reject> {
        let (headers, info) = (conn.headers, conn.info);
        if headers.token.as_deref() == Some("bad") {
            tracing::info!(client_id = %info.client_id, "refused: bad token");
            return Err(Reject::unauthorized("invalid token"));
        }
        tracing::debug!(client_id = %info.client_id, user = %zocket_core::redact::truncate(&headers.user_name, 64), role = ?headers.user_role, "connected");
        Ok(RefCtx {
            user_name: headers.user_name,
            user_role: headers.user_role,
        })
    }

    async fn disconnect(&self, end: Disconnect<'_, Self>) {
        let info = end.info;
        tracing::info!(
            client_id = %info.client_id,
            user = %zocket_core::redact::truncate(&self.user_name, 64),
            rooms = %zocket_core::redact::list(&info.rooms, 10, 64),
            reason = ?info.reason,
            "client disconnected"
        );
    }
}

/// The context behind [`RequireStaff`]: the user is an admin or a moderator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    /// The user's name.
    pub user_name: String,
    /// `Admin` or `Moderator`.
    pub role: Role,
}

/// Middleware: admin or moderator, else `FORBIDDEN`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequireStaff;

impl Middleware<RefCtx> for RequireStaff {
    type Out = Staff;
    async fn run(&self, cx: &Cx<RefCtx>, _input: &Input<'_>) -> Result<Staff, Reject> {
        if cx.user_role.is_staff() {
            Ok(Staff {
                user_name: cx.user_name.clone(),
                role: cx.user_role,
            })
        } else {
            Err(Reject::forbidden("admin or moderator role required"))
        }
    }
}

/// The context behind [`RequireAdmin`]: the user is an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The admin's name.
    pub user_name: String,
}

/// Middleware: admin only, else `FORBIDDEN`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequireAdmin;

impl Middleware<RefCtx> for RequireAdmin {
    type Out = Admin;
    async fn run(&self, cx: &Cx<RefCtx>, _input: &Input<'_>) -> Result<Admin, Reject> {
        if cx.user_role == Role::Admin {
            Ok(Admin {
                user_name: cx.user_name.clone(),
            })
        } else {
            Err(Reject::forbidden("admin role required"))
        }
    }
}

/// The context after the first `test.compute` middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step1 {
    /// The connection's context.
    pub user: RefCtx,
    /// `"mw1-" + message`.
    pub step1: String,
}

/// The context after the second `test.compute` middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step2 {
    /// The connection's context.
    pub user: RefCtx,
    /// `"mw1-" + message`.
    pub step1: String,
    /// `"mw2-" + step1`.
    pub step2: String,
}

/// First `test.compute` middleware: adds `step1 = "mw1-" + message`, reading the
/// validated (defaulted) input.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComputeStep1;

impl Middleware<RefCtx> for ComputeStep1 {
    type Out = Step1;
    async fn run(&self, cx: &Cx<RefCtx>, input: &Input<'_>) -> Result<Step1, Reject> {
        let Some(input) = input.get::<messages::TestCompute>() else {
            tracing::error!(
                message = input.message_name(),
                "ComputeStep1 used for a message other than test.compute"
            );
            return Err(Reject::internal());
        };
        Ok(Step1 {
            user: cx.context().clone(),
            step1: format!("mw1-{}", input.message),
        })
    }
}

/// Second `test.compute` middleware: adds `step2 = "mw2-" + step1`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComputeStep2;

impl Middleware<Step1> for ComputeStep2 {
    type Out = Step2;
    async fn run(&self, cx: &Cx<Step1>, _input: &Input<'_>) -> Result<Step2, Reject> {
        Ok(Step2 {
            user: cx.user.clone(),
            step1: cx.step1.clone(),
            step2: format!("mw2-{}", cx.step1),
        })
    }
}

/// The complete reference router of REFERENCE_APP.md.
///
/// ```
/// use zocket_core::testing::TestServer;
/// use zocket_examples::reference::{self, contract::{messages::Greet, GreetIn}};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let app = TestServer::new(reference::router());
/// let client = app.connect([("userName", "Ada")]).await.unwrap();
/// assert_eq!(client.call::<Greet>(GreetIn::new("Bob")).await.unwrap(), "Hello, Bob!");
/// # });
/// ```
pub fn router() -> Router<RefCtx> {
    Router::new()
        .on::<messages::EchoPing>(echo_ping)
        .on::<messages::Greet>(greet)
        .on::<messages::Log>(log)
        .on::<messages::DelayedEcho>(delayed_echo)
        .on::<messages::Trigger>(trigger)
        .on::<messages::ChatPrivate>(chat_private)
        .on::<messages::ChatRoom>(chat_room)
        .on::<messages::GetClientId>(get_client_id)
        .on::<messages::RoomsJoin>(rooms_join)
        .on::<messages::RoomsLeave>(rooms_leave)
        .on::<messages::RoomsMessage>(rooms_message)
        .on::<messages::RoomsList>(rooms_list)
        .on_sync::<BenchEchoRaw>(bench_echo)
        .on::<messages::BenchFanout>(bench_fanout)
        .on::<messages::FailPanic>(fail_panic)
        .on::<messages::FailError>(fail_error)
        .on::<messages::SlowSleep>(slow_sleep)
        .on::<messages::RoomsMembers>(rooms_members)
        .on::<messages::IsConnected>(is_connected)
        .scope(RequireStaff, |s| {
            s.on::<messages::SystemAnnouncement>(system_announcement)
                .on::<messages::NotificationSend>(notification_send)
                .on::<messages::AdminDisconnect>(admin_disconnect)
        })
        .scope(RequireAdmin, |s| {
            s.on::<messages::TestAdminOnly>(test_admin_only)
        })
        .scope(ComputeStep1, |s| {
            s.scope(ComputeStep2, |s| {
                s.on::<messages::TestCompute>(test_compute)
            })
        })
}

async fn echo_ping(cx: Cx<RefCtx>, input: PingIn) -> Result<(), Reject> {
    let _ = cx.reply_event::<events::EchoPong>(Pong {
        reply: format!("pong: {}", input.message),
    });
    Ok(())
}

async fn greet(_cx: Cx<RefCtx>, input: GreetIn) -> Result<String, Reject> {
    Ok(format!("Hello, {}!", input.name))
}

async fn log(cx: Cx<RefCtx>, input: String) -> Result<(), Reject> {
    tracing::info!(
        client_id = %cx.client_id(),
        user = %zocket_core::redact::truncate(&cx.user_name, 64),
        message = %zocket_core::redact::truncate(&input, 1024),
        "log"
    );
    Ok(())
}

async fn delayed_echo(_cx: Cx<RefCtx>, input: String) -> Result<String, Reject> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(format!("Echo: {input}"))
}

async fn trigger(cx: Cx<RefCtx>, input: String) -> Result<(), Reject> {
    let _ = cx.send::<events::MessageEvent>(input).broadcast();
    Ok(())
}

async fn system_announcement(cx: Cx<Staff>, input: AnnouncementIn) -> Result<(), Reject> {
    let _ = cx
        .send::<events::SystemAnnouncement>(Announcement {
            message: input.message,
            from: cx.user_name.clone(),
            timestamp: now_rfc3339(),
        })
        .broadcast();
    Ok(())
}

async fn chat_private(cx: Cx<RefCtx>, input: PrivateMessageIn) -> Result<(), Reject> {
    let _ = cx
        .send::<events::ChatPrivate>(PrivateMessage {
            from: cx.user_name.clone(),
            message: input.message,
            timestamp: now_rfc3339(),
        })
        .to(input.target_user_id)
        .check()?;
    Ok(())
}

async fn chat_room(cx: Cx<RefCtx>, input: RoomChatIn) -> Result<(), Reject> {
    let room = input.room_id.clone();
    let _ = cx
        .send::<events::ChatRoom>(RoomChat {
            room_id: input.room_id,
            from: cx.user_name.clone(),
            message: input.message,
            timestamp: now_rfc3339(),
        })
        .to_room(room)
        .check()?;
    Ok(())
}

async fn notification_send(cx: Cx<Staff>, input: NotificationSendIn) -> Result<(), Reject> {
    let out = cx.send::<events::NotificationReceive>(Notification {
        kind: input.kind,
        message: input.message,
        timestamp: now_rfc3339(),
    });
    if input.broadcast {
        let _ = out.broadcast();
    } else if !input.targets.is_empty() {
        out.to(input.targets).check()?;
    } else if !input.rooms.is_empty() {
        out.to_room(input.rooms).check()?;
    }
    Ok(())
}

async fn get_client_id(cx: Cx<RefCtx>, _input: Empty) -> Result<ClientIdInfo, Reject> {
    let info = ClientIdInfo {
        client_id: cx.client_id().clone(),
    };
    let _ = cx.reply_event::<events::ConnectionClientId>(info.clone());
    Ok(info)
}

async fn rooms_join(cx: Cx<RefCtx>, input: RoomIn) -> Result<Vec<String>, Reject> {
    // Over a limit (rooms per connection, room-name length): `LIMIT`.
    if cx.rooms().join(&input.room_id)? {
        let _ = cx
            .send::<events::RoomsJoined>(RoomMembership {
                room_id: input.room_id.clone(),
                user_name: cx.user_name.clone(),
            })
            .to_room(&input.room_id);
    }
    Ok(cx.rooms().current())
}

async fn rooms_leave(cx: Cx<RefCtx>, input: RoomIn) -> Result<Vec<String>, Reject> {
    if cx.rooms().has(&input.room_id) {
        let _ = cx
            .send::<events::RoomsLeft>(RoomMembership {
                room_id: input.room_id.clone(),
                user_name: cx.user_name.clone(),
            })
            .to_room(&input.room_id);
        cx.rooms().leave(&input.room_id);
    }
    Ok(cx.rooms().current())
}

async fn rooms_message(cx: Cx<RefCtx>, input: RoomMessageIn) -> Result<(), Reject> {
    if !cx.rooms().has(&input.room_id) {
        return Err(Reject::forbidden(format!(
            "not a member of room `{}`",
            input.room_id
        )));
    }
    let room = input.room_id.clone();
    let _ = cx
        .send::<events::RoomsMessage>(RoomMessage {
            room_id: input.room_id,
            user_name: cx.user_name.clone(),
            content: input.content,
            timestamp: now_rfc3339(),
        })
        .to_room(room)
        .check()?;
    Ok(())
}

async fn rooms_list(cx: Cx<RefCtx>, _input: Empty) -> Result<Vec<String>, Reject> {
    Ok(cx.rooms().current())
}

async fn test_compute(cx: Cx<Step2>, _input: PingIn) -> Result<(), Reject> {
    let _ = cx.reply_event::<events::TestResultEvent>(TestResult {
        step1: cx.step1.clone(),
        step2: cx.step2.clone(),
    });
    Ok(())
}

async fn test_admin_only(cx: Cx<Admin>, _input: Empty) -> Result<(), Reject> {
    let _ = cx.reply_event::<events::TestAdmin>(AdminOk { ok: true });
    Ok(())
}

/// `bench.echo` as this server takes it: the contract's [`messages::BenchEcho`] (any JSON
/// in, the same out, identical on the wire), read and written as raw JSON text, byte for
/// byte, never parsed into a tree (as a relay would, and as the benchmarks' floor does).
enum BenchEchoRaw {}

impl zocket_core::Message for BenchEchoRaw {
    const NAME: &'static str = <messages::BenchEcho as zocket_core::Message>::NAME;
    type Input = Box<serde_json::value::RawValue>;
    type Output = Box<serde_json::value::RawValue>;
}

/// A plain function (`on_sync`): it has nothing to wait for, so it is called as soon as
/// its frame is read and its reply queued at once, with no future.
fn bench_echo(
    _cx: Cx<RefCtx>,
    input: Box<serde_json::value::RawValue>,
) -> Result<Box<serde_json::value::RawValue>, Reject> {
    Ok(input)
}

async fn bench_fanout(cx: Cx<RefCtx>, input: Fanout) -> Result<(), Reject> {
    let room = input.room_id.clone();
    cx.send::<events::BenchTick>(input).to_room(room).check()?;
    Ok(())
}

async fn fail_panic(_cx: Cx<RefCtx>, _input: Empty) -> Result<(), Reject> {
    panic!("fail.panic: deliberate panic from the reference app");
}

async fn fail_error(_cx: Cx<RefCtx>, _input: Empty) -> Result<(), Reject> {
    Err(Reject::new("TEAPOT", "I'm a teapot").with_data(serde_json::json!({"hint": "try coffee"})))
}

async fn slow_sleep(_cx: Cx<RefCtx>, input: SleepIn) -> Result<u64, Reject> {
    tokio::time::sleep(Duration::from_millis(input.ms)).await;
    Ok(input.ms)
}

/// A hub error as the client sees it: bad close code or reason is `INVALID_INPUT`, an
/// unreachable backend `UNAVAILABLE`.
fn hub_reject(e: zocket_core::HubError) -> Reject {
    match e {
        zocket_core::HubError::Unavailable(m) => {
            tracing::warn!(error = %m, "cluster query failed");
            Reject::new(
                "UNAVAILABLE",
                "the cluster backend is unavailable; try again",
            )
        }
        other => Reject::invalid_input(other.to_string()),
    }
}

async fn rooms_members(cx: Cx<RefCtx>, input: RoomIn) -> Result<RoomMembers, Reject> {
    let server = cx.server();
    let members = server.members(&input.room_id).await.map_err(hub_reject)?;
    let count = server
        .member_count(&input.room_id)
        .await
        .map_err(hub_reject)?;
    Ok(RoomMembers { members, count })
}

async fn is_connected(cx: Cx<RefCtx>, input: ClientIn) -> Result<bool, Reject> {
    cx.server()
        .is_connected(&input.client_id)
        .await
        .map_err(hub_reject)
}

async fn admin_disconnect(cx: Cx<Staff>, input: DisconnectIn) -> Result<bool, Reject> {
    tracing::info!(by = %cx.user_name, client_id = %input.client_id, code = input.code, "admin.disconnect");
    cx.server()
        .disconnect(&input.client_id, input.code, &input.reason)
        .await
        .map_err(hub_reject)
}
