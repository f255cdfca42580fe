//! The limits of [`crate::ServerConfig`] that handlers' calls check (rooms per
//! connection, room name length, recipients per send), and their `LIMIT` refusal.

use crate::error::{Reject, codes};
use crate::hub::Recipients;

/// The per-connection limits of [`crate::ServerConfig`] that handlers' calls check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandlerLimits {
    pub(crate) max_rooms: usize,
    pub(crate) max_room_name_bytes: usize,
    pub(crate) max_send_targets: usize,
}

impl HandlerLimits {
    pub(crate) fn from_config(cfg: &crate::ServerConfig) -> Self {
        Self {
            max_rooms: cfg.max_rooms_per_connection,
            max_room_name_bytes: cfg.max_room_name_bytes,
            max_send_targets: cfg.max_send_targets,
        }
    }

    pub(super) fn check_room_name(&self, room: &str) -> Result<(), (&'static str, usize)> {
        if room.len() > self.max_room_name_bytes {
            return Err(("max_room_name_bytes", self.max_room_name_bytes));
        }
        Ok(())
    }

    /// The limit the recipients of a send break, if any.
    pub(super) fn check_recipients(&self, to: &Recipients) -> Result<(), (&'static str, usize)> {
        let n = match to {
            Recipients::Clients(ids) => ids.len(),
            Recipients::Rooms(rooms) => {
                for room in rooms {
                    self.check_room_name(room)?;
                }
                rooms.len()
            }
            Recipients::All => 0,
        };
        if n > self.max_send_targets {
            return Err(("max_send_targets", self.max_send_targets));
        }
        Ok(())
    }
}

/// The `LIMIT` refusal of the named [`crate::ServerConfig`] limit.
pub(crate) fn limit_reject(limit: &'static str, max: usize) -> Reject {
    let what = match limit {
        "max_room_name_bytes" => format!("a room name may have at most {max} bytes"),
        "max_rooms_per_connection" => format!("a connection may be in at most {max} rooms"),
        "max_send_targets" => format!("one send may name at most {max} ids or rooms"),
        _ => format!("at most {max}"),
    };
    Reject::new(codes::LIMIT, format!("{limit}: {what}"))
}
