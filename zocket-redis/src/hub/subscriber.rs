//! The subscriber task: one pub/sub connection following the channels this node wants.

use super::*;

/// The subscriber task: one pub/sub connection, subscribed to exactly the wanted
/// channels; on any failure it reconnects with backoff and subscribes them all again.
pub(super) async fn subscriber(s: Arc<Shared>, client: redis::Client) {
    let mut backoff = Backoff::new(s.cfg.reconnect_min, s.cfg.reconnect_max);
    loop {
        let r = tokio::select! {
            r = subscribed_session(&s, &client, &mut backoff) => r,
            _ = s.cancel.cancelled() => return,
        };
        s.applied.send_replace(None);
        if let Err(e) = r {
            s.outage.failed(SUBSCRIBER, &e, s.failed.load(Relaxed));
            tracing::debug!(error = %e, "redis subscriber connection lost");
        }
        let wait = backoff.step();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = s.cancel.cancelled() => return,
        }
    }
}

async fn subscribed_session(
    s: &Shared,
    client: &redis::Client,
    backoff: &mut Backoff,
) -> Result<(), HubError> {
    let pubsub = s.timed(client.get_async_pubsub()).await?;
    let (mut sink, mut stream) = pubsub.split();
    // Everything wanted now; later changes arrive as pending.
    let (all, mut generation): (Vec<String>, u64) = {
        let mut st = s.lock_subs();
        st.pending.clear();
        (st.wanted.iter().cloned().collect(), st.requested)
    };
    let mut subscribed: HashSet<String> = HashSet::with_capacity(all.len());
    for chunk in all.chunks(SUB_CHUNK) {
        s.timed(sink.subscribe(chunk)).await?;
        subscribed.extend(chunk.iter().cloned());
    }
    for c in &all {
        tracing::debug!(channel = %c, "subscribed");
    }
    backoff.reset();
    s.sessions.fetch_add(1, Relaxed);
    s.outage.ok(SUBSCRIBER, s.failed.load(Relaxed));
    s.applied.send_replace(Some(generation));
    let mut ping = tokio::time::interval(s.cfg.heartbeat);
    ping.reset();
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err(HubError::Unavailable("pub/sub connection closed".into()));
                };
                s.on_message(msg.get_channel_name(), msg.get_payload_bytes());
            }
            _ = s.sub_notify.notified() => {
                let (pending, g) = {
                    let mut st = s.lock_subs();
                    (std::mem::take(&mut st.pending), st.requested)
                };
                let (on, off): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, on)| *on);
                let on: Vec<String> = on.into_iter().map(|(c, _)| c).filter(|c| !subscribed.contains(c)).collect();
                let off: Vec<String> = off.into_iter().map(|(c, _)| c).filter(|c| subscribed.contains(c)).collect();
                for chunk in on.chunks(SUB_CHUNK) {
                    s.timed(sink.subscribe(chunk)).await?;
                    for c in chunk {
                        tracing::debug!(channel = %c, "subscribed");
                        subscribed.insert(c.clone());
                    }
                }
                for chunk in off.chunks(SUB_CHUNK) {
                    s.timed(sink.unsubscribe(chunk)).await?;
                    for c in chunk {
                        tracing::debug!(channel = %c, "unsubscribed");
                        subscribed.remove(c);
                    }
                }
                generation = g;
                s.applied.send_replace(Some(generation));
            }
            _ = ping.tick() => {
                // In subscribed mode the answer is ["pong", ""]: any answer will do.
                s.timed(sink.ping::<redis::Value>()).await?;
            }
        }
    }
}
