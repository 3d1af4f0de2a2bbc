//! One room far above the presence threshold, under churn: people join, leave, drop, come back,
//! rename and talk while membership changes are coalesced into `presence` frames. Every invariant
//! holds, and once the run is quiet every member's count and (after paging with `who`) its list
//! of names are exactly the room's membership.

use std::time::Duration;

use chat_engine::protocol::Command;
use chat_engine::{Config, ServerMessage};
use chat_sim::checker::assert_invariants;
use chat_sim::trace::{now, Received};
use chat_sim::{
    add_server, builder, engine_config, join, limits, seeds, Client, ServerSpec, Trace,
};
use rand::Rng;

const CLIENTS: usize = 24;
const ROOM: &str = "lobby";
const ACT_UNTIL: Duration = Duration::from_secs(6);
/// Quiet for several presence intervals by then: every change has been announced.
const PAGE_AT: Duration = Duration::from_secs(8);
const SNAPSHOT_AT: Duration = Duration::from_secs(10);
const CLOSE_AT: Duration = Duration::from_secs(11);

/// Rooms above six members coalesce; a welcome or page lists four names; a presence frame
/// lists at most five per kind, so a busy interval leaves names out.
fn spec() -> ServerSpec {
    ServerSpec {
        engine: Config {
            presence_notify_max: 6,
            presence_list_max: 4,
            presence_changes_max: 5,
            presence_interval: Duration::from_millis(300),
            ..engine_config()
        },
        ..ServerSpec::default()
    }
}

fn name(i: usize) -> String {
    format!("member{i:02}")
}

async fn churn(c: &mut Client) {
    let mut renames = 0;
    while now() < ACT_UNTIL {
        let pause = Duration::from_millis(c.rng().random_range(50..400));
        tokio::time::sleep(pause).await;
        if !c.is_open() {
            let nick = c.view().nick.unwrap_or_else(|| c.name().to_owned());
            c.connect(join(ROOM, &nick)).await;
            continue;
        }
        if c.view().users_stale {
            // As a client showing the list would: names were left out, so page it again.
            c.page_all_users(Duration::from_secs(1)).await;
            continue;
        }
        match c.rng().random_range(0..100) {
            0..45 => {
                c.say();
            }
            45..57 => {
                renames += 1;
                let nick = format!("{}-v{renames}", c.name());
                c.rename(&nick);
            }
            57..62 => {
                c.send(&Command::Typing);
            }
            62..70 => {
                c.send(&Command::Who { after: None });
            }
            70..85 => {
                c.close().await;
                let away = Duration::from_millis(c.rng().random_range(50..600));
                tokio::time::sleep(away).await;
            }
            _ => {
                c.drop_connection();
                let away = Duration::from_millis(c.rng().random_range(50..600));
                tokio::time::sleep(away).await;
                let resume = c.resume_request();
                c.connect(resume).await;
            }
        }
    }
    if !c.is_open() || c.view().room.is_none() {
        let nick = format!("{}-end", c.name());
        c.connect(join(ROOM, &nick)).await;
    }
}

#[test]
fn a_room_far_above_the_presence_threshold_converges_under_churn() {
    seeds::run(
        "a_room_far_above_the_presence_threshold_converges_under_churn",
        |seed| {
            let mut sim = builder(seed).build();
            let spec = spec();
            add_server(&mut sim, spec.clone());
            let trace = Trace::new();
            for i in 0..CLIENTS {
                let trace = trace.clone();
                sim.client(name(i), async move {
                    let name = name(i);
                    let mut c = Client::new(&trace, &name, seed);
                    c.must_join(ROOM, &name).await;
                    churn(&mut c).await;
                    chat_sim::sleep_until(PAGE_AT).await;
                    // What presence frames alone made of the room, then the paged list.
                    c.checkpoint();
                    assert!(
                        c.page_all_users(Duration::from_secs(1)).await,
                        "{name} could not page the member list"
                    );
                    c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
                    Ok(())
                });
            }
            chat_sim::run(&mut sim);
            assert_invariants(&trace, limits(&spec));

            // The run really was a large room: coalesced frames, some of them leaving names out.
            let record = trace.lock();
            let (mut presence, mut truncated, mut joins_while_large) = (0, 0, 0);
            for log in record.clients.values() {
                for seen in log.sessions.iter().flat_map(|s| &s.seen) {
                    match &seen.what {
                        Received::Frame(ServerMessage::Presence {
                            joined_more,
                            left_more,
                            renamed_more,
                            ..
                        }) => {
                            presence += 1;
                            if joined_more + left_more + renamed_more > 0 {
                                truncated += 1;
                            }
                        }
                        Received::Frame(ServerMessage::Join { .. }) if seen.at > ACT_UNTIL / 2 => {
                            joins_while_large += 1
                        }
                        _ => {}
                    }
                }
            }
            eprintln!("large room: {presence} presence frames, {truncated} leaving names out");
            assert!(presence > CLIENTS, "only {presence} presence frames");
            assert!(truncated > 0, "no presence frame ever left names out");
            assert_eq!(joins_while_large, 0, "join notices in a large room");
            let snapshots = record
                .clients
                .values()
                .filter(|l| l.snapshot.as_ref().is_some_and(|s| s.users_complete))
                .count();
            assert_eq!(
                snapshots, CLIENTS,
                "everyone connected at the end, with a paged list"
            );
        },
    );
}
