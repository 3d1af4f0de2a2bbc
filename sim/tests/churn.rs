//! Join/leave churn, room switches and nickname changes while messages flow: every invariant
//! holds throughout, and presence converges once it stops.

use std::time::Duration;

use chat_engine::protocol::Command;
use chat_engine::ServerMessage;
use chat_sim::checker::assert_invariants;
use chat_sim::trace::{now, Received};
use chat_sim::{add_server, builder, join, limits, seeds, Client, ServerSpec, Trace};
use rand::Rng;

const CLIENTS: usize = 12;
const ROOMS: [&str; 3] = ["lobby", "rust", "music"];
const ACT_UNTIL: Duration = Duration::from_secs(6);
const SNAPSHOT_AT: Duration = Duration::from_secs(8);
const CLOSE_AT: Duration = Duration::from_secs(9);

fn name(i: usize) -> String {
    format!("churner{i:02}")
}

fn random_room(c: &mut Client) -> &'static str {
    ROOMS[c.rng().random_range(0..ROOMS.len())]
}

async fn churn(c: &mut Client, i: usize) {
    let mut renames = 0;
    while now() < ACT_UNTIL {
        let pause = Duration::from_millis(c.rng().random_range(50..300));
        tokio::time::sleep(pause).await;
        if !c.is_open() {
            let room = random_room(c);
            let nick = c.name().to_owned();
            c.connect(join(room, &nick)).await;
            continue;
        }
        match c.rng().random_range(0..100) {
            0..55 => {
                c.say();
            }
            55..68 => {
                let room = random_room(c);
                c.join(room);
            }
            68..76 => {
                renames += 1;
                let nick = format!("{}-v{renames}", c.name());
                c.rename(&nick);
            }
            76..80 => {
                // Someone else's nickname: taken when they are in the same room.
                let other = c.rng().random_range(0..CLIENTS);
                c.rename(&name(other));
            }
            80..84 => {
                c.send(&Command::Typing);
            }
            84..93 => {
                c.close().await;
                let away = Duration::from_millis(c.rng().random_range(100..800));
                tokio::time::sleep(away).await;
            }
            _ => {
                c.drop_connection();
                let away = Duration::from_millis(c.rng().random_range(100..800));
                tokio::time::sleep(away).await;
                if i.is_multiple_of(2) {
                    // Half of them come back asking to resume where they were.
                    let resume = c.resume_request();
                    c.connect(resume).await;
                }
            }
        }
    }
    if !c.is_open() || c.view().room.is_none() {
        // Its own name may be someone else's nickname by now.
        let nick = format!("{}-end", c.name());
        c.connect(join(ROOMS[i % ROOMS.len()], &nick)).await;
    }
}

#[test]
fn churn_and_renames_while_messages_flow() {
    seeds::run("churn_and_renames_while_messages_flow", |seed| {
        let mut sim = builder(seed).build();
        let spec = ServerSpec::default();
        add_server(&mut sim, spec.clone());
        let trace = Trace::new();
        for i in 0..CLIENTS {
            let trace = trace.clone();
            sim.client(name(i), async move {
                let name = name(i);
                let mut c = Client::new(&trace, &name, seed);
                let room = ROOMS[i % ROOMS.len()];
                c.must_join(room, &name).await;
                churn(&mut c, i).await;
                c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
                Ok(())
            });
        }
        chat_sim::run(&mut sim);
        assert_invariants(&trace, limits(&spec));

        // The run really churned: count what happened.
        let record = trace.lock();
        let (mut sessions, mut renames, mut taken, mut switches) = (0, 0, 0, 0);
        for log in record.clients.values() {
            sessions += log.sessions.len();
            for seen in log.sessions.iter().flat_map(|s| &s.seen) {
                match &seen.what {
                    Received::Frame(ServerMessage::Nick { .. }) => renames += 1,
                    Received::Frame(ServerMessage::Error { code, .. }) if code == "nick_taken" => {
                        taken += 1
                    }
                    Received::Frame(ServerMessage::Leave { reason, .. })
                        if reason == "switched" =>
                    {
                        switches += 1
                    }
                    _ => {}
                }
            }
        }
        eprintln!(
            "churn: {sessions} sessions, {renames} nick frames, {taken} nick_taken, {switches} switch leaves"
        );
        assert!(sessions > CLIENTS * 2, "only {sessions} sessions");
        assert!(
            renames > 0 && switches > 0,
            "no renames or no room switches"
        );
        let snapshots = record
            .clients
            .values()
            .filter(|l| l.snapshot.is_some())
            .count();
        assert_eq!(snapshots, CLIENTS, "everyone is connected at the end");
    });
}
