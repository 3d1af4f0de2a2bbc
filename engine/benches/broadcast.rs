//! The engine's per-recipient cost of one chat message broadcast to a room, and the cost of one
//! join into rooms of every size.
//!
//! `CARGO_TARGET_DIR=/work/target-engine cargo bench -p chat-engine --bench broadcast`
//!
//! Each iteration is one member posting one message (`handle(Input::Frame)`) followed by draining
//! every `Output` (one `Send` per member, the sender's own copy included), so divan's
//! items-per-second figure is recipients per second and `time / members` is the cost per
//! recipient. Nobody is evicted or paused: the rate limit is off and the queue bounds and
//! high-water marks are far above what a run queues, so no `Flushed` is needed between
//! iterations. `broadcast_then_flushed` adds what a real shell also costs the engine per
//! recipient: one `Input::Flushed` for every frame it wrote.
//!
//! `join_and_leave` is one client joining a room of 1,000, 10,000 or 100,000 members and switching
//! back out: above the presence threshold its cost must stay flat whatever the room's size.
//!
//! Setup (everyone joining the room) happens once per benchmark, outside the timed region.

use std::time::{Instant, SystemTime};

use chat_engine::{ClientId, Config, Engine, Input, JoinRequest, Now, Output};
use divan::counter::ItemsCount;
use divan::Bencher;

fn main() {
    divan::main();
}

const MEMBERS: [usize; 3] = [100, 1_000, 10_000];
const TEXT: &str = "hello, everyone in the room";

/// An engine with `members` clients in the default room; returns it, one member, and the time.
fn room_with(members: usize) -> (Engine, ClientId, Now) {
    let unbounded = 1 << 40;
    let config = Config {
        clients_max: members + 1,
        rate_limit_per_second: 0,
        queue_frames_max: unbounded,
        queue_bytes_max: unbounded,
        queue_high_water_frames: unbounded,
        queue_high_water_bytes: unbounded,
        ..Config::default()
    };
    let mut engine = Engine::new(config, "bench").expect("valid config");
    let now = Now::new(Instant::now(), SystemTime::now());
    let mut sender = None;
    for i in 0..members {
        let join = JoinRequest {
            nick: Some(format!("user{i}")),
            ..JoinRequest::default()
        };
        let id = engine.connect(now, join).expect("below clients_max");
        sender.get_or_insert(id);
        while engine.poll_output().is_some() {}
    }
    assert_eq!(engine.stats().clients, members);
    (engine, sender.expect("at least one member"), now)
}

fn post(engine: &mut Engine, now: Now, sender: ClientId) {
    let input = Input::Frame {
        client: sender,
        text: TEXT,
    };
    engine.handle(now, input).expect("the sender is connected");
}

/// One message to every member: `handle(Frame)` plus draining the outputs.
#[divan::bench(args = MEMBERS)]
fn broadcast(bencher: Bencher, members: usize) {
    let (mut engine, sender, now) = room_with(members);
    bencher.counter(ItemsCount::new(members)).bench_local(|| {
        post(&mut engine, now, sender);
        let mut sent = 0;
        while let Some(output) = engine.poll_output() {
            sent += usize::from(matches!(output, Output::Send { .. }));
            divan::black_box_drop(output);
        }
        assert_eq!(sent, members);
    });
}

/// As `broadcast`, and then the shell reports each written frame with `Input::Flushed`.
#[divan::bench(args = MEMBERS)]
fn broadcast_then_flushed(bencher: Bencher, members: usize) {
    let (mut engine, sender, now) = room_with(members);
    let mut written = Vec::with_capacity(members);
    bencher.counter(ItemsCount::new(members)).bench_local(|| {
        post(&mut engine, now, sender);
        while let Some(output) = engine.poll_output() {
            if let Output::Send { to, frame } = output {
                written.push((to, frame.len()));
            }
        }
        for (client, bytes) in written.drain(..) {
            let flushed = Input::Flushed {
                client,
                frames: 1,
                bytes,
            };
            engine
                .handle(now, flushed)
                .expect("flushing a written frame");
        }
    });
}

/// Room sizes for the join benchmark: the cost of a join must not grow with the room.
const ROOMS: [usize; 3] = [1_000, 10_000, 100_000];

/// One member of a room of `members` (above the presence threshold, so joins are coalesced)
/// joins it and switches back out to a small room: the welcome (the count, the first page of
/// names and the history), the membership bookkeeping and the pending presence change, twice.
/// Time passes in no iteration, so no presence tick (one frame per member per interval, not per
/// join) falls inside the timed region.
#[divan::bench(args = ROOMS)]
fn join_and_leave(bencher: Bencher, members: usize) {
    let (mut engine, _, now) = room_with(members);
    let visitor = engine
        .connect(
            now,
            JoinRequest {
                room: Some("side".to_owned()),
                nick: Some("visitor".to_owned()),
                ..JoinRequest::default()
            },
        )
        .expect("below clients_max");
    while engine.poll_output().is_some() {}
    let into = r#"{"type":"join","room":"general"}"#;
    let back = r#"{"type":"join","room":"side"}"#;
    bencher.bench_local(|| {
        for text in [into, back] {
            let input = Input::Frame {
                client: visitor,
                text,
            };
            engine.handle(now, input).expect("the visitor is connected");
            while let Some(output) = engine.poll_output() {
                divan::black_box_drop(output);
            }
        }
    });
}
