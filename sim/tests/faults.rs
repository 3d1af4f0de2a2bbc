//! Network and peer faults: latency and jitter between hosts, a flooding client rate-limited while
//! the others are unaffected, and a graceful shutdown closing everyone with 1001.

use std::time::Duration;

use chat_engine::ServerMessage;
use chat_sim::checker::{self, assert_invariants};
use chat_sim::trace::{now, Received};
use chat_sim::{
    add_server, builder, engine_config, join, limits, seeds, sleep_until, Client, ServerSpec,
    Trace, SERVER,
};

fn name(i: usize) -> String {
    format!("user{i}")
}

/// Chats every 100-500 ms until second `until`, snapshots at second `snapshot`, closes at `close`.
async fn chatter(mut c: Client, room: &str, [until, snapshot, close]: [u64; 3]) {
    let secs = Duration::from_secs;
    let (until, snapshot_at, close_at) = (secs(until), secs(snapshot), secs(close));
    let nick = c.name().to_owned();
    c.must_join(room, &nick).await;
    c.chat_until(until, 100..500).await;
    c.snapshot_then_close(snapshot_at, close_at).await;
}

#[test]
fn latency_and_jitter_between_hosts_lose_nothing() {
    seeds::run("latency_and_jitter_between_hosts_lose_nothing", |seed| {
        let mut sim = builder(seed)
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(150))
            .build();
        let spec = ServerSpec::default();
        add_server(&mut sim, spec.clone());
        let trace = Trace::new();
        for i in 0..12 {
            let trace = trace.clone();
            sim.client(name(i), async move {
                let c = Client::new(&trace, &name(i), seed);
                let room = ["north", "south", "east"][i % 3];
                chatter(c, room, [4, 7, 8]).await;
                Ok(())
            });
        }
        // Some links are far slower than the rest.
        for i in (0..12).step_by(4) {
            sim.set_link_latency(SERVER, name(i), Duration::from_millis(250));
        }
        chat_sim::run(&mut sim);
        assert_invariants(&trace, limits(&spec));
        let record = trace.lock();
        for i in 0..12 {
            let lost = checker::unacknowledged(&record, &name(i));
            assert!(
                lost.is_empty(),
                "{}'s messages never came back: {lost:?}",
                name(i)
            );
        }
        // Two hops of at most 250 ms each, plus ticks.
        let (delay, which) = checker::max_delivery_delay(&record, &[]);
        assert!(
            delay <= Duration::from_millis(600),
            "{which} took {delay:?}"
        );
    });
}

#[test]
fn a_flooding_client_is_rate_limited_and_the_others_are_unaffected() {
    const FLOODER: &str = "flooder_fred";
    seeds::run(
        "a_flooding_client_is_rate_limited_and_the_others_are_unaffected",
        |seed| {
            let mut sim = builder(seed).build();
            let spec = ServerSpec {
                engine: chat_engine::Config {
                    rate_limit_burst: 20,
                    rate_limit_per_second: 10,
                    rate_limit_strikes_max: 50,
                    ..engine_config()
                },
                ..ServerSpec::default()
            };
            add_server(&mut sim, spec.clone());
            let trace = Trace::new();
            for i in 0..6 {
                let trace = trace.clone();
                sim.client(name(i), async move {
                    let c = Client::new(&trace, &name(i), seed);
                    chatter(c, "main", [4, 6, 7]).await;
                    Ok(())
                });
            }
            let trace2 = trace.clone();
            sim.client(FLOODER, async move {
                let mut c = Client::new(&trace2, FLOODER, seed);
                assert!(c.connect(join("main", FLOODER)).await);
                sleep_until(Duration::from_secs(1)).await;
                // Ten frames every 5 ms (2000 a second) until the server hangs up.
                while c.is_open() && now() < Duration::from_secs(4) {
                    for _ in 0..10 {
                        c.say();
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(())
            });
            chat_sim::run(&mut sim);
            assert_invariants(&trace, limits(&spec));

            let record = trace.lock();
            assert_eq!(checker::close_codes(&record, FLOODER), [Some(1008)]);
            let flooder = &record.clients[FLOODER];
            let limited = flooder
                .sessions
                .iter()
                .flat_map(|s| &s.seen)
                .filter(|s| matches!(&s.what, Received::Frame(ServerMessage::Error { code, .. }) if code == "rate_limited"))
                .count();
            assert!(limited > 0, "{FLOODER} was never told to slow down");
            let accepted = flooder.sent.len() - checker::unacknowledged(&record, FLOODER).len();
            assert!(
                accepted <= 20 + 10 * 3,
                "{FLOODER} got {accepted} of {} messages through",
                flooder.sent.len()
            );
            for i in 0..6 {
                let name = name(i);
                let lost = checker::unacknowledged(&record, &name);
                assert!(
                    lost.is_empty(),
                    "{name}'s messages never came back: {lost:?}"
                );
                let leaves = checker::leaves_seen(&record, &name, FLOODER);
                assert!(
                    matches!(&leaves[..], [(_, reason)] if reason == "flooding"),
                    "{name} saw {FLOODER} leave as {leaves:?}"
                );
            }
            let (delay, which) = checker::max_delivery_delay(&record, &[]);
            assert!(
                delay <= Duration::from_millis(200),
                "{which} took {delay:?}"
            );
        },
    );
}

#[test]
fn graceful_shutdown_closes_everyone_with_1001() {
    const SHUTDOWN_AT: Duration = Duration::from_secs(4);
    seeds::run("graceful_shutdown_closes_everyone_with_1001", |seed| {
        let mut sim = builder(seed).build();
        let spec = ServerSpec {
            shutdown_at: Some(SHUTDOWN_AT),
            ..ServerSpec::default()
        };
        add_server(&mut sim, spec.clone());
        let trace = Trace::new();
        for i in 0..10 {
            let trace = trace.clone();
            sim.client(name(i), async move {
                let name = name(i);
                let mut c = Client::new(&trace, &name, seed);
                assert!(c.connect(join(["a", "b"][i % 2], &name)).await);
                // Chat right up to the shutdown.
                c.chat_until(SHUTDOWN_AT - Duration::from_millis(500), 50..300)
                    .await;
                sleep_until(SHUTDOWN_AT - Duration::from_millis(100)).await;
                c.snapshot();
                let closed = c.wait_until(|v| !v.open, Duration::from_secs(5)).await;
                assert!(closed, "{name} is still connected after the shutdown");
                Ok(())
            });
        }
        chat_sim::run(&mut sim);
        assert_invariants(&trace, limits(&spec));
        let record = trace.lock();
        for i in 0..10 {
            let name = name(i);
            assert_eq!(checker::close_codes(&record, &name), [Some(1001)], "{name}");
            let lost = checker::unacknowledged(&record, &name);
            assert!(
                lost.is_empty(),
                "{name}'s messages never came back: {lost:?}"
            );
            let closed_at = record.clients[&name].sessions[0].end.as_ref().map(|e| e.0);
            assert!(
                closed_at.is_some_and(
                    |at| at >= SHUTDOWN_AT && at < SHUTDOWN_AT + Duration::from_secs(1)
                ),
                "{name}'s connection ended at {closed_at:?}"
            );
        }
    });
}
