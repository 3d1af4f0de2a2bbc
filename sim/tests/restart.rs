//! Server restarts (`bounce`, and `crash` then restart): clients reconnect by themselves, asking to
//! resume; the new epoch makes every one of them get `recovered: false` rather than a silent gap.

use std::time::Duration;

use chat_engine::ServerMessage;
use chat_sim::checker::{self, assert_invariants};
use chat_sim::trace::{now, End, Received};
use chat_sim::{add_server, builder, limits, seeds, Client, ServerSpec, Trace, SERVER};
use rand::Rng;

const CLIENTS: usize = 8;
const DOWN_AT: Duration = Duration::from_secs(2);
const ACT_UNTIL: Duration = Duration::from_secs(6);
const SNAPSHOT_AT: Duration = Duration::from_secs(8);
const CLOSE_AT: Duration = Duration::from_secs(9);

fn name(i: usize) -> String {
    format!("user{i}")
}

/// Chats, and whenever the connection is gone, reconnects after a short random backoff asking to
/// resume where it was.
async fn resilient(c: &mut Client) {
    while now() < ACT_UNTIL {
        if !c.is_open() {
            let backoff = Duration::from_millis(c.rng().random_range(50..250));
            tokio::time::sleep(backoff).await;
            let resume = c.resume_request();
            c.connect(resume).await;
            continue;
        }
        let ms = c.rng().random_range(100..400);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        c.say();
    }
}

/// Runs the scenario; the server goes down at `DOWN_AT` and comes back after `downtime`
/// (`None`: bounced, i.e. restarted at once).
fn restart(seed: u64, downtime: Option<Duration>) {
    let mut sim = builder(seed).build();
    let spec = ServerSpec::default();
    let starts = add_server(&mut sim, spec.clone());
    let trace = Trace::new();
    for i in 0..CLIENTS {
        let trace = trace.clone();
        sim.client(name(i), async move {
            let name = name(i);
            let mut c = Client::new(&trace, &name, seed);
            let room = if i.is_multiple_of(2) { "even" } else { "odd" };
            c.must_join(room, &name).await;
            resilient(&mut c).await;
            c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
            Ok(())
        });
    }
    let (mut down, mut up) = (false, false);
    while chat_sim::step(&mut sim) {
        let elapsed = sim.elapsed();
        match downtime {
            None if !up && elapsed >= DOWN_AT => {
                sim.bounce(SERVER);
                up = true;
            }
            Some(_) if !down && elapsed >= DOWN_AT => {
                sim.crash(SERVER);
                down = true;
            }
            Some(downtime) if down && !up && elapsed >= DOWN_AT + downtime => {
                sim.bounce(SERVER);
                up = true;
            }
            _ => {}
        }
    }
    assert_eq!(
        starts.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one restart"
    );
    assert_invariants(&trace, limits(&spec));

    let record = trace.lock();
    for i in 0..CLIENTS {
        let name = name(i);
        let log = &record.clients[&name];
        let welcomes = checker::welcomes(&record, &name);
        let [(false, before, _), (false, after, _)] = &welcomes[..] else {
            panic!("{name}: expected one welcome per server start, none recovered: {welcomes:?}");
        };
        assert!(
            before.starts_with("sim-1-") && after.starts_with("sim-2-"),
            "{welcomes:?}"
        );
        // It asked to resume (since and the old epoch) and was told it could not.
        let on_new_server = |x: &chat_sim::trace::Seen| matches!(&x.what, Received::Frame(ServerMessage::Welcome { epoch, .. }) if epoch == after);
        let asked = log
            .sessions
            .iter()
            .find(|s| s.seen.iter().any(on_new_server))
            .map(|s| &s.request)
            .expect("a session on the new server");
        assert!(
            asked.since.is_some() && asked.epoch.as_deref() == Some(before.as_str()),
            "{name} reconnected without asking to resume: {asked:?}"
        );
        assert!(log.snapshot.is_some(), "{name} is connected at the end");
        let failed = log
            .sessions
            .iter()
            .filter(|s| matches!(s.end, Some((_, End::Refused(_)))))
            .count();
        match downtime {
            None => assert!(failed <= 2, "{name} failed to reconnect {failed} times"),
            Some(_) => assert!(failed >= 1, "{name} reached a crashed server"),
        }
    }
}

#[test]
fn a_bounced_server_gets_everyone_back_unrecovered() {
    seeds::run("a_bounced_server_gets_everyone_back_unrecovered", |seed| {
        restart(seed, None)
    });
}

#[test]
fn a_crashed_server_restarted_later_gets_everyone_back_unrecovered() {
    seeds::run(
        "a_crashed_server_restarted_later_gets_everyone_back_unrecovered",
        |seed| restart(seed, Some(Duration::from_secs(1))),
    );
}
