//! Subscriptions: a bounded queue per subscriber, filled by the reader without ever
//! waiting, drained (and decoded) by the subscriber's own task.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures::Stream;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// What the reader hands to a subscriber.
enum QueueItem {
    /// The payload's JSON text (`null` when the frame had none).
    Event(Arc<str>),
    /// This many events were dropped because the queue was full.
    Lagged(u64),
}

struct QueueState {
    items: VecDeque<QueueItem>,
    waker: Option<Waker>,
    closed: bool,
}

/// One subscriber's queue.
pub(crate) struct Queue {
    capacity: usize,
    state: Mutex<QueueState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                waker: None,
                closed: false,
            }),
        }
    }

    /// Never waits: a full queue counts the event as missed.
    fn push(&self, payload: &Arc<str>) {
        let mut st = lock(&self.state);
        if st.closed {
            return;
        }
        if st.items.len() >= self.capacity {
            if let Some(QueueItem::Lagged(n)) = st.items.back_mut() {
                *n += 1;
            } else {
                st.items.push_back(QueueItem::Lagged(1));
            }
        } else {
            st.items.push_back(QueueItem::Event(payload.clone()));
        }
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
}

/// Every subscriber, by event name.
#[derive(Default)]
pub(crate) struct Registry {
    subs: Mutex<HashMap<String, Vec<Arc<Queue>>>>,
    closed: Mutex<bool>,
}

impl Registry {
    pub(crate) fn add(&self, name: &str, capacity: usize) -> Arc<Queue> {
        let q = Arc::new(Queue::new(capacity));
        if *lock(&self.closed) {
            q.close();
            return q;
        }
        lock(&self.subs)
            .entry(name.to_owned())
            .or_default()
            .push(q.clone());
        q
    }

    fn remove(&self, name: &str, q: &Arc<Queue>) {
        let mut subs = lock(&self.subs);
        if let Some(list) = subs.get_mut(name) {
            list.retain(|x| !Arc::ptr_eq(x, q));
            if list.is_empty() {
                subs.remove(name);
            }
        }
    }

    /// Whether anyone listens to `name` (lets the reader skip copying payloads).
    pub(crate) fn has(&self, name: &str) -> bool {
        lock(&self.subs).contains_key(name)
    }

    /// How many subscriptions of `name` are alive.
    pub(crate) fn count(&self, name: &str) -> usize {
        lock(&self.subs).get(name).map_or(0, Vec::len)
    }

    /// Hand one event to every subscriber of `name`. Never waits.
    pub(crate) fn deliver(&self, name: &str, payload: &Arc<str>) -> usize {
        let subs = lock(&self.subs);
        match subs.get(name) {
            Some(list) => {
                for q in list {
                    q.push(payload);
                }
                list.len()
            }
            None => 0,
        }
    }

    /// End every subscription (the client closed); later subscriptions end at once.
    pub(crate) fn close_all(&self) {
        *lock(&self.closed) = true;
        let subs = std::mem::take(&mut *lock(&self.subs));
        for q in subs.values().flatten() {
            q.close();
        }
    }
}

/// A stream of the payloads of one event, typed as `T`.
///
/// Created by [`Client::subscribe`](crate::Client::subscribe) (typed) or
/// [`Client::subscribe_raw`](crate::Client::subscribe_raw) (`serde_json::Value`). Each
/// subscriber gets every event that arrives while it exists, in order. Items are
/// `Err(ClientError::Decode { .. })` for a payload that does not match `T` (the stream
/// goes on) and `Err(ClientError::Lagged { .. })` where events were dropped because this
/// subscriber fell more than the subscription buffer behind. The stream survives
/// reconnects (events sent while disconnected are missed) and ends (`None`) when the
/// client is closed. Dropping it unsubscribes.
pub struct Subscription<T> {
    name: Arc<str>,
    queue: Arc<Queue>,
    registry: Arc<Registry>,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Subscription<T> {
    pub(crate) fn new(name: &str, registry: Arc<Registry>, capacity: usize) -> Self {
        let queue = registry.add(name, capacity);
        Self {
            name: name.into(),
            queue,
            registry,
            _marker: PhantomData,
        }
    }

    /// The event name this subscription listens to.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T: DeserializeOwned> Subscription<T> {
    /// The next item, `None` once the client is closed. The same as
    /// [`StreamExt::next`](futures::StreamExt::next), without importing the trait.
    pub async fn recv(&mut self) -> Option<Result<T, ClientError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T: DeserializeOwned> Stream for Subscription<T> {
    type Item = Result<T, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = {
            let mut st = lock(&this.queue.state);
            match st.items.pop_front() {
                Some(d) => d,
                None if st.closed => return Poll::Ready(None),
                None => {
                    st.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        };
        // Decoding happens here, in the subscriber's task, never in the reader.
        Poll::Ready(Some(match next {
            QueueItem::Event(text) => {
                serde_json::from_str(&text).map_err(|source| ClientError::Decode {
                    name: this.name.to_string(),
                    source,
                })
            }
            QueueItem::Lagged(missed) => Err(ClientError::Lagged { missed }),
        }))
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.registry.remove(&self.name, &self.queue);
    }
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
