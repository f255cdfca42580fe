//! The soak in a short form (issue 9): a few hundred clients for a few seconds on both
//! adapters, server and clients in this process. Every RPC gets exactly one reply (none
//! lost, none doubled), no room event reaches a client outside its room, and once the
//! clients are gone the server's connections, admission slots, hub connections and hub
//! rooms are back to their baseline, waited for with `Server::wait_until` (an event, bounded).
//! The long run (separate processes, RSS, rounds) is the `soak` binary.

use std::time::Duration;

use zocket_examples::soak::{self, SoakConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_keeps_every_invariant_on_both_adapters() {
    for hyper in [false, true] {
        let report = soak::run(SoakConfig {
            clients: 200,
            duration: Duration::from_secs(3),
            rooms: 10,
            hyper,
            reply_bound: Duration::from_secs(30),
            // However slow the machine: every client reconnects at least twice.
            min_sessions: 3,
        })
        .await;
        let c = &report.clients;
        assert_eq!(c.lost(), 0, "hyper={hyper}: replies lost: {report:#?}");
        assert_eq!(c.calls, c.replies, "hyper={hyper}: {report:#?}");
        assert_eq!(c.unexpected_replies, 0, "hyper={hyper}: {report:#?}");
        assert_eq!(c.outside_room, 0, "hyper={hyper}: {report:#?}");
        assert!(
            report.settled,
            "hyper={hyper}: connections left: {report:#?}"
        );
        assert!(
            soak::back_to_baseline(&report.before, &report.after),
            "hyper={hyper}: {report:#?}"
        );
        assert_eq!(report.after.connections, 0, "hyper={hyper}: {report:#?}");
        assert_eq!(report.after.admitted, (0, 0), "hyper={hyper}: {report:#?}");
        assert_eq!(report.after.hub_rooms, 0, "hyper={hyper}: {report:#?}");
        assert!(report.ok(), "hyper={hyper}: {report:#?}");
        // The run did what it claims: sessions ended and started again, rooms got events,
        // sockets were dropped with calls in flight (1 session in 8; 600 or more sessions).
        assert!(c.sessions >= 600 && c.room_events > 0, "{report:#?}");
        assert!(c.abandoned > 0, "{report:#?}");
    }
}

#[test]
fn a_report_with_a_lost_reply_or_a_stray_event_fails() {
    let good = soak::ClientReport {
        calls: 10,
        replies: 10,
        ..Default::default()
    };
    assert!(good.ok());
    let lost = soak::ClientReport {
        lost_on_close: 1,
        replies: 9,
        ..good.clone()
    };
    assert!(!lost.ok() && lost.lost() == 1);
    let stray = soak::ClientReport {
        outside_room: 1,
        ..good.clone()
    };
    assert!(!stray.ok());
    let mut closed = good.clone();
    closed.server_closes.insert(1013, 1);
    assert!(!closed.ok());
}
