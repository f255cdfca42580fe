//! The writer task: every command to Redis, in order, pipelined; the membership heartbeat.

use super::*;

/// The writer task: every command to Redis goes through here, in order, pipelined in
/// batches; the heartbeat runs here too, so it is ordered with membership updates.
pub(super) async fn writer(s: Arc<Shared>, mut rx: mpsc::Receiver<Op>) {
    let mut conn = s.conn.clone();
    let mut buf = Vec::with_capacity(BATCH);
    let mut beat = tokio::time::interval(s.cfg.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Backoff::new(s.cfg.reconnect_min, s.cfg.reconnect_max);
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            n = rx.recv_many(&mut buf, BATCH) => if n == 0 { return },
            _ = beat.tick() => {
                if retry_at.is_none_or(|t| tokio::time::Instant::now() >= t) {
                    match heartbeat(&s, &mut conn).await {
                        Ok(()) => {
                            backoff.reset();
                            retry_at = None;
                            s.outage.ok(WRITER, s.failed.load(Relaxed));
                        }
                        Err(e) => {
                            s.dirty.store(true, Relaxed);
                            s.outage.failed(WRITER, &e, s.failed.load(Relaxed));
                            retry_at = Some(tokio::time::Instant::now() + backoff.step());
                        }
                    }
                }
                continue;
            }
            _ = s.cancel.cancelled() => return,
        }
        let mut close = None;
        let mut flushed = Vec::new();
        let mut pipe = redis::pipe();
        // For each publish: its reply slot and the index of its reply.
        let mut publishes: Vec<(usize, Option<Reply>)> = Vec::new();
        let mut count = 0usize;
        let ttl = s.cfg.ttl().as_millis() as u64;
        for op in buf.drain(..) {
            match op {
                Op::Publish {
                    channel,
                    payload,
                    reply,
                } => {
                    pipe.cmd("PUBLISH").arg(channel).arg(payload.as_ref());
                    publishes.push((count, reply));
                    count += 1;
                }
                Op::Register(id) => {
                    let key = s.names.clients_key(&s.instance_hex);
                    pipe.cmd("SADD").arg(&key).arg(id.as_str()).ignore();
                    pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
                }
                Op::Unregister(id, rooms) => {
                    let key = s.names.clients_key(&s.instance_hex);
                    pipe.cmd("SREM").arg(&key).arg(id.as_str()).ignore();
                    for r in rooms {
                        pipe.cmd("SREM")
                            .arg(s.names.members_key(&s.instance_hex, &r))
                            .arg(id.as_str())
                            .ignore();
                    }
                }
                Op::Join(id, room) => {
                    let key = s.names.members_key(&s.instance_hex, &room);
                    pipe.cmd("SADD").arg(&key).arg(id.as_str()).ignore();
                    pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
                }
                Op::Leave(id, room) => {
                    pipe.cmd("SREM")
                        .arg(s.names.members_key(&s.instance_hex, &room))
                        .arg(id.as_str())
                        .ignore();
                }
                Op::Flush(tx) => flushed.push(tx),
                Op::Close(tx) => {
                    close = Some(tx);
                    break;
                }
            }
        }
        let n_pub = publishes.len() as u64;
        let backing_off = retry_at.is_some_and(|t| tokio::time::Instant::now() < t);
        let result: Result<Vec<redis::Value>, HubError> = if pipe.is_empty() {
            Ok(Vec::new())
        } else if backing_off {
            Err(HubError::Unavailable(
                "redis unreachable (backing off)".into(),
            ))
        } else {
            s.timed(pipe.query_async(&mut conn)).await
        };
        match result {
            Ok(values) => {
                s.published.fetch_add(n_pub, Relaxed);
                s.queue_full_logged.store(false, Relaxed);
                if retry_at.take().is_some() {
                    backoff.reset();
                    s.dirty.store(true, Relaxed);
                }
                s.outage.ok(WRITER, s.failed.load(Relaxed));
                if s.dirty.load(Relaxed) && close.is_none() {
                    // Back after a failure: rewrite the membership records now rather
                    // than at the next tick.
                    if let Err(e) = heartbeat(&s, &mut conn).await {
                        s.outage.failed(WRITER, &e, s.failed.load(Relaxed));
                    }
                }
                for (i, reply) in publishes {
                    if let Some(r) = reply {
                        let n = match values.get(i) {
                            Some(redis::Value::Int(n)) => *n,
                            _ => 0,
                        };
                        let _ = r.send(Ok(n));
                    }
                }
            }
            Err(e) => {
                s.failed.fetch_add(n_pub, Relaxed);
                s.dirty.store(true, Relaxed);
                s.outage.failed(WRITER, &e, s.failed.load(Relaxed));
                if !backing_off {
                    retry_at = Some(tokio::time::Instant::now() + backoff.step());
                }
                for (_, reply) in publishes {
                    if let Some(r) = reply {
                        let _ = r.send(Err(e.clone()));
                    }
                }
            }
        }
        for tx in flushed {
            let _ = tx.send(());
        }
        if let Some(tx) = close {
            leave_cluster(&s, &mut conn).await;
            let _ = tx.send(());
            s.cancel.cancel();
            return;
        }
    }
}

/// Refresh this node's records; after a failure (or at start) rewrite them whole.
async fn heartbeat(s: &Shared, conn: &mut ConnectionManager) -> Result<(), HubError> {
    let ttl = s.cfg.ttl().as_millis() as u64;
    let me = &s.instance_hex;
    let clients_key = s.names.clients_key(me);
    let rooms = s.local.local_rooms();
    let resync = s.dirty.swap(false, Relaxed);
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.cmd("SET")
        .arg(s.names.node_key(me))
        .arg(&s.cfg.node_name)
        .arg("PX")
        .arg(ttl)
        .ignore();
    pipe.cmd("SADD").arg(&s.names.nodes).arg(me).ignore();
    if resync {
        pipe.cmd("DEL").arg(&clients_key).ignore();
        let ids = s.local.local_ids();
        for chunk in ids.chunks(1000) {
            let c = pipe.cmd("SADD").arg(&clients_key);
            for id in chunk {
                c.arg(id.as_str());
            }
            c.ignore();
        }
    }
    pipe.cmd("PEXPIRE").arg(&clients_key).arg(ttl).ignore();
    for room in &rooms {
        let key = s.names.members_key(me, room);
        if resync {
            pipe.cmd("DEL").arg(&key).ignore();
            let members = s.local.local_members(room);
            for chunk in members.chunks(1000) {
                let c = pipe.cmd("SADD").arg(&key);
                for id in chunk {
                    c.arg(id.as_str());
                }
                c.ignore();
            }
        }
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
    }
    let r: Result<(), HubError> = s.timed(pipe.query_async(conn)).await;
    if r.is_err() {
        s.dirty.store(true, Relaxed);
        return r;
    }
    if resync {
        tracing::debug!(rooms = rooms.len(), "membership records rewritten");
    }
    // Forget nodes whose liveness key expired.
    let nodes: Vec<String> = s
        .timed(redis::cmd("SMEMBERS").arg(&s.names.nodes).query_async(conn))
        .await?;
    if nodes.len() > 1 {
        let mut pipe = redis::pipe();
        for n in &nodes {
            pipe.cmd("EXISTS").arg(s.names.node_key(n));
        }
        let alive: Vec<bool> = s.timed(pipe.query_async(conn)).await?;
        let dead: Vec<&String> = nodes
            .iter()
            .zip(alive)
            .filter(|(_, a)| !a)
            .map(|(n, _)| n)
            .collect();
        if !dead.is_empty() {
            tracing::info!(
                count = dead.len(),
                "forgetting nodes whose heartbeat expired"
            );
            let mut c = redis::cmd("SREM");
            c.arg(&s.names.nodes);
            for n in dead {
                c.arg(n);
            }
            let _: Result<(), HubError> = s.timed(c.query_async(conn)).await;
        }
    }
    Ok(())
}

/// Remove this node's records (orderly close).
async fn leave_cluster(s: &Shared, conn: &mut ConnectionManager) {
    let me = &s.instance_hex;
    let mut pipe = redis::pipe();
    pipe.cmd("SREM").arg(&s.names.nodes).arg(me).ignore();
    pipe.cmd("DEL").arg(s.names.node_key(me)).ignore();
    pipe.cmd("DEL").arg(s.names.clients_key(me)).ignore();
    for room in s.local.local_rooms() {
        pipe.cmd("DEL").arg(s.names.members_key(me, &room)).ignore();
    }
    if let Err(e) = s.timed::<()>(pipe.query_async(conn)).await {
        tracing::info!(error = %e, "could not remove this node's records; they expire with the membership TTL");
    }
}
