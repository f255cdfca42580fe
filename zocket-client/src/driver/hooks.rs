//! [`AfterConnect`]: the after-connect hooks as the driver sees them. The client handle
//! owns the hooks and implements this, so the driver never needs the handle's types.

use std::future::Future;
use std::pin::Pin;

use crate::error::ClientError;

/// One run of every after-connect hook, in order.
pub(crate) type HookRun = Pin<Box<dyn Future<Output = Result<(), ClientError>> + Send>>;

/// The after-connect hooks, as the driver sees them (the client handle owns them).
pub(crate) trait AfterConnect: Send + Sync {
    /// Whether there are none (then a connection is ready as soon as it is open).
    fn is_empty(&self) -> bool;
    /// A run of the hooks on a fresh connection; `None` when every handle is gone.
    fn run(&self) -> Option<HookRun>;
}
