//! Many clients chatting at random in two rooms: everything is delivered to everyone, and a seed
//! replays the very same run.

use std::time::Duration;

use chat_sim::checker::{self, assert_invariants};
use chat_sim::{add_server, builder, limits, seeds, sleep_until, Client, ServerSpec, Trace};
use rand::Rng;

const ACT_UNTIL: Duration = Duration::from_secs(4);
const SNAPSHOT_AT: Duration = Duration::from_secs(6);
const CLOSE_AT: Duration = Duration::from_secs(7);

fn name(i: usize) -> String {
    format!("user{i:02}")
}

/// `clients` clients, alternating between rooms `alpha` and `beta`, each posting every 0.1-0.6 s.
fn chat(seed: u64, clients: usize) -> Trace {
    let mut sim = builder(seed).build();
    let spec = ServerSpec::default();
    add_server(&mut sim, spec.clone());
    let trace = Trace::new();
    for i in 0..clients {
        let trace = trace.clone();
        sim.client(name(i), async move {
            let name = name(i);
            let mut c = Client::new(&trace, &name, seed);
            let start = Duration::from_millis(c.rng().random_range(0..500));
            sleep_until(start).await;
            let room = if i.is_multiple_of(2) { "alpha" } else { "beta" };
            c.must_join(room, &name).await;
            c.chat_until(ACT_UNTIL, 100..600).await;
            c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
            Ok(())
        });
    }
    chat_sim::run(&mut sim);
    assert_invariants(&trace, limits(&spec));
    trace
}

#[test]
fn fifty_clients_in_two_rooms_get_everything() {
    seeds::run("fifty_clients_in_two_rooms_get_everything", |seed| {
        let trace = chat(seed, 50);
        let record = trace.lock();
        for i in 0..50 {
            let name = name(i);
            let log = &record.clients[&name];
            assert!(log.sent.len() >= 5, "{name} sent only {}", log.sent.len());
            let lost = checker::unacknowledged(&record, &name);
            assert!(
                lost.is_empty(),
                "{name}'s messages never came back: {lost:?}"
            );
            assert!(
                log.snapshot.is_some(),
                "{name} was not connected at the end"
            );
            assert_eq!(checker::close_codes(&record, &name), [Some(1000)]);
        }
        let (delay, which) = checker::max_delivery_delay(&record, &[]);
        assert!(delay < Duration::from_millis(200), "{which} took {delay:?}");
    });
}

#[test]
fn a_seed_replays_the_same_run() {
    seeds::run("a_seed_replays_the_same_run", |seed| {
        let first = chat(seed, 8).fingerprint();
        let second = chat(seed, 8).fingerprint();
        assert_eq!(first, second, "the same seed gave two different runs");
        let other = chat(seed + 1000, 8).fingerprint();
        assert_ne!(first, other, "different seeds gave the same run");
    });
}
