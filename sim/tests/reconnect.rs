//! Reconnecting with `since`/`epoch`: a client recovers exactly what it missed while that is still
//! in the history ring, and is told `recovered: false` when it is not.

use std::time::Duration;

use chat_sim::checker::{self, assert_invariants};
use chat_sim::{
    add_server, builder, engine_config, limits, seeds, sleep_until, Client, ServerSpec, Trace,
};

const TALKERS: usize = 4;
const HISTORY: usize = 20;
const DROP_AT: Duration = Duration::from_millis(1500);
const ACT_UNTIL: Duration = Duration::from_secs(8);
const SNAPSHOT_AT: Duration = Duration::from_secs(10);
const CLOSE_AT: Duration = Duration::from_secs(11);

/// Who drops, for how long (about ten messages a second flow meanwhile), and whether it should
/// get everything back.
const AWAY: [(&str, Duration, bool); 3] = [
    ("brief_erin", Duration::from_millis(700), true),
    ("long_frank", Duration::from_secs(4), false),
    ("blink_gus", Duration::from_millis(10), true),
];

fn talker(i: usize) -> String {
    format!("talker{i}")
}

#[test]
fn reconnecting_recovers_exactly_what_was_missed_or_says_it_cannot() {
    seeds::run(
        "reconnecting_recovers_exactly_what_was_missed_or_says_it_cannot",
        |seed| {
            let mut sim = builder(seed).build();
            let spec = ServerSpec {
                engine: chat_engine::Config {
                    history_max: HISTORY,
                    ..engine_config()
                },
                ..ServerSpec::default()
            };
            add_server(&mut sim, spec.clone());
            let trace = Trace::new();
            for i in 0..TALKERS {
                let trace = trace.clone();
                sim.client(talker(i), async move {
                    let name = talker(i);
                    let mut c = Client::new(&trace, &name, seed);
                    c.must_join("main", &name).await;
                    c.chat_until(ACT_UNTIL, 200..600).await;
                    c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
                    Ok(())
                });
            }
            for (name, away, _) in AWAY {
                let trace = trace.clone();
                sim.client(name, async move {
                    let mut c = Client::new(&trace, name, seed);
                    c.must_join("main", name).await;
                    sleep_until(DROP_AT).await;
                    c.drop_connection();
                    tokio::time::sleep(away).await;
                    let resume = c.resume_request();
                    assert!(resume.since.is_some() && resume.epoch.is_some());
                    assert!(c.connect(resume).await, "{name} could not reconnect");
                    c.chat_until(ACT_UNTIL, 200..600).await;
                    c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
                    Ok(())
                });
            }
            chat_sim::run(&mut sim);
            // With `recovered: true`, the checker asserts the history is exactly since+1..=seq.
            assert_invariants(&trace, limits(&spec));

            let record = trace.lock();
            for (name, away, recovers) in AWAY {
                let welcomes = checker::welcomes(&record, name);
                let [(false, first_epoch, _), (recovered, epoch, history)] = &welcomes[..] else {
                    panic!("{name} should have had two welcomes: {welcomes:?}");
                };
                assert_eq!(first_epoch, epoch, "same server, same room");
                assert_eq!(
                    *recovered, recovers,
                    "{name}, away for {away:?}, got recovered: {recovered} with {history} messages"
                );
                if !recovers {
                    assert_eq!(*history, HISTORY, "{name} gets the latest history instead");
                }
            }
        },
    );
}
