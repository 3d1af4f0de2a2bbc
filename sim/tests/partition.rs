//! A partitioned client: the server notices through its heartbeat (idle timeout), removes it and
//! tells the room it left; the client notices the missing pings, and once the link is repaired it
//! reconnects and recovers what it missed.

use std::time::Duration;

use chat_sim::checker::{self, assert_invariants};
use chat_sim::trace::now;
use chat_sim::{
    add_server, builder, engine_config, limits, seeds, sleep_until, Client, ServerSpec, Trace,
    SERVER,
};

const PEERS: usize = 5;
const CUT: &str = "cut_dave";
const CUT_AT: Duration = Duration::from_secs(2);
const REPAIR_AT: Duration = Duration::from_secs(6);
const ACT_UNTIL: Duration = Duration::from_secs(8);
const SNAPSHOT_AT: Duration = Duration::from_secs(10);
const CLOSE_AT: Duration = Duration::from_secs(11);
const PING: Duration = Duration::from_millis(500);
const IDLE: Duration = Duration::from_secs(2);

fn peer(i: usize) -> String {
    format!("peer{i}")
}

#[test]
fn a_partitioned_client_times_out_and_the_room_is_told() {
    seeds::run(
        "a_partitioned_client_times_out_and_the_room_is_told",
        |seed| {
            let mut sim = builder(seed).build();
            let spec = ServerSpec {
                engine: chat_engine::Config {
                    ping_interval: PING,
                    idle_timeout: IDLE,
                    ..engine_config()
                },
                ..ServerSpec::default()
            };
            add_server(&mut sim, spec.clone());
            let trace = Trace::new();
            for i in 0..PEERS {
                let trace = trace.clone();
                sim.client(peer(i), async move {
                    let name = peer(i);
                    let mut c = Client::new(&trace, &name, seed);
                    c.must_join("main", &name).await;
                    c.chat_until(ACT_UNTIL, 200..800).await;
                    c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
                    Ok(())
                });
            }
            let trace2 = trace.clone();
            sim.client(CUT, async move {
                let mut c = Client::new(&trace2, CUT, seed);
                c.must_join("main", CUT).await;
                sleep_until(CUT_AT).await;
                turmoil::partition(SERVER, CUT);
                // Client-side heartbeat: no ping for three intervals means the connection is dead.
                let silent = c
                    .wait_until(|v| now() > v.last_heard + PING * 3, Duration::from_secs(3))
                    .await;
                assert!(
                    silent,
                    "{CUT} kept hearing from the server through a partition"
                );
                c.drop_connection();
                sleep_until(REPAIR_AT).await;
                turmoil::repair(SERVER, CUT);
                let resume = c.resume_request();
                assert!(c.connect(resume).await, "{CUT} could not reconnect");
                c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
                Ok(())
            });
            chat_sim::run(&mut sim);
            assert_invariants(&trace, limits(&spec));

            let record = trace.lock();
            // The server may take up to the idle timeout plus a sweep (and a tick or two) to notice.
            let latest = CUT_AT + IDLE + Duration::from_secs(1);
            for i in 0..PEERS {
                let name = peer(i);
                let mut leaves = checker::leaves_seen(&record, &name, CUT);
                // Its last leave, at the very end, is its own close.
                leaves.retain(|(at, _)| *at < ACT_UNTIL);
                assert!(
                    matches!(&leaves[..], [(at, reason)] if reason == "timeout" && *at >= CUT_AT + IDLE - PING && *at <= latest),
                    "{name} saw {CUT} leave as {leaves:?} (partitioned at {CUT_AT:?})"
                );
                assert!(record.clients[&name]
                    .snapshot
                    .as_ref()
                    .is_some_and(|s| s.users.contains(CUT)));
            }
            let welcomes = checker::welcomes(&record, CUT);
            assert!(
                matches!(&welcomes[..], [(false, _, _), (true, _, missed)] if *missed > 0),
                "{CUT} should have recovered what it missed: {welcomes:?}"
            );
        },
    );
}
