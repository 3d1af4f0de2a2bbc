//! Slow consumers: a client that stops reading is evicted (4001) once its queue overflows, while
//! everyone else keeps receiving with no gap and no extra delay; a client that pauses only
//! briefly is not evicted and misses nothing.

use std::time::Duration;

use chat_sim::checker::{self, assert_invariants};
use chat_sim::trace::now;
use chat_sim::{
    add_server, builder, engine_config, limits, seeds, sleep_until, Client, Role, ServerSpec, Trace,
};

const TALKERS: usize = 10;
const SLOW: &str = "slow_carol";
const ACT_UNTIL: Duration = Duration::from_secs(5);
const SNAPSHOT_AT: Duration = Duration::from_secs(7);
const CLOSE_AT: Duration = Duration::from_secs(8);
/// The bound on delivery delay for everyone who keeps reading (latency is at most 20 ms a hop).
const DELAY_BOUND: Duration = Duration::from_millis(200);

fn talker(i: usize) -> String {
    format!("talker{i:02}")
}

fn spec() -> ServerSpec {
    let mut engine = engine_config();
    engine.queue_frames_max = 32;
    engine.queue_high_water_frames = 16;
    // Out of reach: frames, not bytes, decide eviction here.
    engine.queue_bytes_max = 64 << 20;
    engine.queue_high_water_bytes = 32 << 20;
    // Longer than any hold below, so silence is never the reason for a close.
    engine.idle_timeout = Duration::from_secs(20);
    ServerSpec {
        engine,
        ..ServerSpec::default()
    }
}

/// When the slow client reads again.
#[derive(Clone, Copy)]
enum Resume {
    At(Duration),
    /// 100 ms after the room was told it was evicted (at the latest at this time).
    AfterEviction(Duration),
}

/// Ten talkers and one client that stops reading from `stop` until `resume`.
fn slow_run(seed: u64, stop: Duration, resume: Resume, talk_every_ms: u64) -> Trace {
    let mut sim = builder(seed).tcp_capacity(16).build();
    let spec = spec();
    add_server(&mut sim, spec.clone());
    let trace = Trace::new();
    for i in 0..TALKERS {
        let trace = trace.clone();
        sim.client(talker(i), async move {
            let name = talker(i);
            let mut c = Client::new(&trace, &name, seed);
            c.must_join("main", &name).await;
            c.chat_until(ACT_UNTIL, talk_every_ms / 2..talk_every_ms * 3 / 2)
                .await;
            c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
            Ok(())
        });
    }
    let trace2 = trace.clone();
    sim.client(SLOW, async move {
        let mut c = Client::new(&trace2, SLOW, seed);
        c.set_role(Role::Slow);
        c.must_join("main", SLOW).await;
        sleep_until(stop).await;
        c.stop_reading();
        match resume {
            Resume::At(at) => sleep_until(at).await,
            Resume::AfterEviction(latest) => {
                // The test peeks at what the room saw; the slow client itself hears nothing.
                while now() < latest
                    && checker::leaves_seen(&trace2.lock(), &talker(0), SLOW).is_empty()
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        c.resume_reading();
        c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
        Ok(())
    });
    chat_sim::run(&mut sim);
    assert_invariants(&trace, limits(&spec));
    trace
}

/// The slow client's view and the room's view of an eviction.
fn assert_evicted(trace: &Trace, stop: Duration, resume: Duration) {
    let record = trace.lock();
    assert_eq!(
        checker::close_codes(&record, SLOW),
        [Some(4001)],
        "{SLOW} should have been evicted as too slow"
    );
    for i in 0..TALKERS {
        let name = talker(i);
        let leaves = checker::leaves_seen(&record, &name, SLOW);
        assert!(
            matches!(&leaves[..], [(at, reason)] if reason == "evicted" && *at > stop && *at < resume),
            "{name} saw {SLOW} leave as {leaves:?}"
        );
        let lost = checker::unacknowledged(&record, &name);
        assert!(
            lost.is_empty(),
            "{name}'s messages never came back: {lost:?}"
        );
        assert_eq!(checker::close_codes(&record, &name), [Some(1000)]);
    }
    let (delay, which) = checker::max_delivery_delay(&record, &[SLOW]);
    assert!(delay <= DELAY_BOUND, "{which} took {delay:?}");
}

#[test]
fn a_client_that_stops_reading_is_evicted_and_nobody_else_notices() {
    seeds::run(
        "a_client_that_stops_reading_is_evicted_and_nobody_else_notices",
        |seed| {
            let (stop, latest) = (Duration::from_secs(1), Duration::from_secs(4));
            let trace = slow_run(seed, stop, Resume::AfterEviction(latest), 200);
            assert_evicted(&trace, stop, latest);
        },
    );
}

/// Regression for a server bug this suite found: the connection task used to linger for the
/// client's close before its writer had flushed, so a client unreadable for longer than the
/// linger (1 s) was reset and could lose its 4001 close (seed 2). The writer now flushes first.
#[test]
fn a_long_stall_still_ends_with_4001() {
    seeds::run("a_long_stall_still_ends_with_4001", |seed| {
        let (stop, resume) = (Duration::from_secs(1), Duration::from_secs(4));
        let trace = slow_run(seed, stop, Resume::At(resume), 200);
        assert_evicted(&trace, stop, resume);
    });
}

#[test]
fn a_brief_pause_is_not_an_eviction() {
    seeds::run("a_brief_pause_is_not_an_eviction", |seed| {
        let (stop, resume) = (Duration::from_secs(1), Duration::from_millis(1300));
        let trace = slow_run(seed, stop, Resume::At(resume), 1000);
        let record = trace.lock();
        assert_eq!(checker::close_codes(&record, SLOW), [Some(1000)]);
        assert!(record.clients[SLOW].snapshot.is_some(), "{SLOW} stayed");
        let (delay, which) = checker::max_delivery_delay(&record, &[SLOW]);
        assert!(delay <= DELAY_BOUND, "{which} took {delay:?}");
    });
}
