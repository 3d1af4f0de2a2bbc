//! A client that reconnects from the same address does not get a fresh burst: it starts with
//! the rate buckets the last connection from there left with, until they have refilled.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::shell;
use crate::protocol::JoinRequest;
use crate::test_kit::Shell;
use crate::{ClientId, Config};

const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));

fn limited() -> Config {
    Config {
        rate_limit_burst: 5,
        rate_limit_per_second: 1,
        rate_limit_strikes_max: 0,
        ..Config::default()
    }
}

fn connect(h: &mut Shell, nick: &str, from: IpAddr) -> ClientId {
    let join = JoinRequest {
        nick: Some(nick.into()),
        ..Default::default()
    };
    let id = h.try_connect_from(join, Some(from)).expect("connect");
    h.take(id);
    id
}

/// Sends `n` messages from `id`; how many were refused.
fn refused(h: &mut Shell, id: ClientId, n: usize) -> usize {
    for i in 0..n {
        h.send(id, &format!("m{i}"));
    }
    h.errors(id).iter().filter(|e| *e == "rate_limited").count()
}

#[test]
fn reconnecting_from_the_same_address_does_not_refill_the_burst() {
    let mut h = shell(limited());
    let first = connect(&mut h, "flood", HOME);
    assert_eq!(refused(&mut h, first, 5), 0, "the whole burst");
    h.disconnect(first);
    let again = connect(&mut h, "flood", HOME);
    assert_eq!(refused(&mut h, again, 1), 1, "nothing left to draw on");
    let other = connect(&mut h, "other", ELSEWHERE);
    assert_eq!(refused(&mut h, other, 5), 0, "another address has its own");
    // One second refills one message, not the burst.
    h.disconnect(again);
    h.advance(Duration::from_secs(1));
    let third = connect(&mut h, "flood", HOME);
    assert_eq!(refused(&mut h, third, 2), 1);
}

#[test]
fn once_refilled_a_reconnect_gets_the_whole_burst_and_the_entry_is_gone() {
    let mut h = shell(limited());
    let first = connect(&mut h, "flood", HOME);
    refused(&mut h, first, 5);
    h.disconnect(first);
    assert_eq!(h.engine.departures.len(), 1);
    h.advance(Duration::from_secs(5));
    let again = connect(&mut h, "flood", HOME);
    assert_eq!(h.engine.departures.len(), 0);
    assert_eq!(refused(&mut h, again, 5), 0);
    assert_eq!(refused(&mut h, again, 1), 1);
    // Leaving with a full bucket leaves nothing to remember.
    let calm = connect(&mut h, "calm", ELSEWHERE);
    h.disconnect(calm);
    assert_eq!(h.engine.departures.len(), 0);
}

#[test]
fn the_table_of_departures_holds_at_most_clients_max() {
    let mut h = shell(Config {
        clients_max: 3,
        ..limited()
    });
    for i in 0..10u8 {
        let from = IpAddr::V4(Ipv4Addr::new(10, 0, 0, i));
        let id = connect(&mut h, &format!("c{i}"), from);
        refused(&mut h, id, 2);
        h.disconnect(id);
        assert!(h.engine.departures.len() <= 3);
    }
    assert_eq!(h.engine.departures.len(), 3);
    // The newest departures are the ones kept.
    let back = connect(&mut h, "c9", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));
    assert_eq!(refused(&mut h, back, 4), 1, "three left of five");
}

#[test]
fn a_client_of_unknown_address_leaves_nothing() {
    let mut h = shell(limited());
    let id = h.connect("anon");
    refused(&mut h, id, 5);
    h.disconnect(id);
    assert_eq!(h.engine.departures.len(), 0);
}

#[test]
fn a_departure_is_kept_exactly_until_its_buckets_are_full() {
    let mut h = shell(limited());
    // Five messages at once: full again five seconds later, to the nanosecond.
    let first = connect(&mut h, "flood", HOME);
    refused(&mut h, first, 5);
    h.disconnect(first);
    assert_eq!(h.engine.departures.len(), 1);
    h.advance(Duration::from_secs(5));
    // Any arrival clears what is worth nothing now.
    connect(&mut h, "passer", ELSEWHERE);
    assert_eq!(h.engine.departures.len(), 0, "full at this instant");
    // Leaving at the very instant the bucket is full again leaves nothing.
    let second = connect(&mut h, "again", HOME);
    refused(&mut h, second, 5);
    h.advance(Duration::from_secs(5));
    h.disconnect(second);
    assert_eq!(h.engine.departures.len(), 0);
}
