//! Per-address admission of WebSocket upgrades: how many WebSockets one address has open
//! (`--max-connections-per-ip`) and how fast it may open new ones (`--connect-rate-per-ip`).
//!
//! An address is an IPv4 address, or an IPv6 /64: one subscriber usually gets a whole /64, so
//! counting single IPv6 addresses would let one client be 2^64 clients. IPv4-mapped IPv6
//! addresses count as their IPv4 address.
//!
//! The rate is a token bucket per address: it holds `rate` upgrades and refills at `rate` per
//! minute. It is kept in its GCRA form, one instant per address ("the bucket is full again at"),
//! so an entry is two words and needs no timer to refill.
//!
//! Memory is bounded: an address with nothing open and a full bucket is forgotten (at once
//! when it has no rate to remember, else when the table fills up), and the table holds at most
//! `table_max` entries. When it is full of addresses that were seen recently, the ones with
//! nothing open are forgotten (their buckets start full again: an attacker spread over that
//! many addresses is not slowed by a per-address limit anyway, and refusing everyone new would
//! be worse). Addresses with WebSockets open are never forgotten; there are at most as many as
//! WebSockets, so `table_max` must be above `--max-connections`.
//!
//! Reads no clock: `now` comes in, so the unit tests below run on made-up instants.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why an upgrade was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The address has `max` WebSockets open already.
    TooMany { max: usize },
    /// The address's bucket is empty: it may open `per_minute` per minute.
    TooFast { per_minute: u32 },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// WebSockets open from this address.
    open: usize,
    /// When the bucket is full again (GCRA's "theoretical arrival time"); at or before `now`,
    /// the bucket is full.
    full_at: Instant,
}

/// The table of addresses and their counts.
#[derive(Debug)]
pub(crate) struct PerIp {
    max_open: usize,
    per_minute: u32,
    table_max: usize,
    table: HashMap<IpAddr, Entry>,
}

impl PerIp {
    /// `max_open` WebSockets per address (0: no cap), `per_minute` upgrades per minute in a
    /// burst of as many (0: no limit), at most `table_max` addresses remembered.
    pub(crate) fn new(max_open: usize, per_minute: u32, table_max: usize) -> Self {
        Self {
            max_open,
            per_minute,
            table_max: table_max.max(1),
            table: HashMap::new(),
        }
    }

    /// Whether either limit is on; when neither is, nothing is recorded at all.
    pub(crate) fn enabled(&self) -> bool {
        self.max_open > 0 || self.per_minute > 0
    }

    /// Addresses remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }

    /// The time one upgrade costs: the bucket regains one per this.
    fn interval(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }

    /// Admits one more WebSocket from `ip`, or says why not. An attempt refused for its rate
    /// costs nothing; one refused for the cap has spent its token (hammering a full address
    /// must not be free). Every admission must be paired with a [`PerIp::release`].
    pub(crate) fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let key = key(ip);
        if !self.table.contains_key(&key) && self.table.len() >= self.table_max {
            self.make_room(now);
        }
        let interval = self.interval();
        let (max_open, per_minute) = (self.max_open, self.per_minute);
        let entry = self.table.entry(key).or_insert(Entry {
            open: 0,
            full_at: now,
        });
        if per_minute > 0 {
            // An empty bucket is one whose full time is a whole burst away.
            let full_at = entry.full_at.max(now) + interval;
            if full_at > now + interval * per_minute {
                return Err(Refusal::TooFast { per_minute });
            }
            entry.full_at = full_at;
        }
        if max_open > 0 && entry.open >= max_open {
            return Err(Refusal::TooMany { max: max_open });
        }
        entry.open += 1;
        Ok(())
    }

    /// One WebSocket from `ip` has ended.
    pub(crate) fn release(&mut self, ip: IpAddr, now: Instant) {
        let key = key(ip);
        if let Some(entry) = self.table.get_mut(&key) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 && entry.full_at <= now {
                self.table.remove(&key);
            }
        }
    }

    /// Forgets idle addresses (nothing open, bucket full); if none is, every address with
    /// nothing open.
    fn make_room(&mut self, now: Instant) {
        self.table.retain(|_, e| e.open > 0 || e.full_at > now);
        if self.table.len() >= self.table_max {
            let before = self.table.len();
            self.table.retain(|_, e| e.open > 0);
            tracing::warn!(
                forgotten = before - self.table.len(),
                "per-address table full of recent addresses: forgot their connect rates"
            );
        }
    }
}

/// The address a limit counts: IPv4 as it is, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// One admitted WebSocket; dropping it (when the connection's task ends, however it ends)
/// releases its address's count.
pub(crate) struct IpSlot {
    table: Arc<Mutex<PerIp>>,
    ip: IpAddr,
}

impl IpSlot {
    /// Admits `ip` into `table`, or says why not.
    pub(crate) fn admit(table: &Arc<Mutex<PerIp>>, ip: IpAddr) -> Result<Option<Self>, Refusal> {
        let now = tokio::time::Instant::now().into_std();
        // A panic while holding the lock leaves counts that are still counts: keep going.
        let mut guard = table.lock().unwrap_or_else(PoisonError::into_inner);
        if !guard.enabled() {
            return Ok(None);
        }
        guard.admit(ip, now)?;
        Ok(Some(Self {
            table: table.clone(),
            ip,
        }))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let now = tokio::time::Instant::now().into_std();
        let mut guard = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        guard.release(self.ip, now);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn the_cap_refuses_one_more_than_max_and_a_release_makes_room() {
        let now = Instant::now();
        let mut table = PerIp::new(2, 0, 100);
        assert_eq!(table.admit(A, now), Ok(()));
        assert_eq!(table.admit(A, now), Ok(()));
        assert_eq!(table.admit(A, now), Err(Refusal::TooMany { max: 2 }));
        assert_eq!(
            table.admit(B, now),
            Ok(()),
            "another address is not affected"
        );
        table.release(A, now);
        assert_eq!(table.admit(A, now), Ok(()));
    }

    #[test]
    fn the_rate_allows_a_burst_then_one_per_interval() {
        let start = Instant::now();
        let mut table = PerIp::new(0, 3, 100);
        for _ in 0..3 {
            assert_eq!(table.admit(A, start), Ok(()));
        }
        assert_eq!(
            table.admit(A, start),
            Err(Refusal::TooFast { per_minute: 3 })
        );
        // A refused attempt costs nothing: one interval later exactly one more is allowed.
        let later = start + Duration::from_secs(20);
        assert_eq!(table.admit(A, later), Ok(()));
        assert_eq!(
            table.admit(A, later),
            Err(Refusal::TooFast { per_minute: 3 })
        );
        assert_eq!(table.admit(B, later), Ok(()));
    }

    #[test]
    fn an_idle_address_is_forgotten() {
        let now = Instant::now();
        let mut table = PerIp::new(1, 0, 100);
        table.admit(A, now).expect("admitted");
        assert_eq!(table.len(), 1);
        table.release(A, now);
        assert_eq!(table.len(), 0, "no rate to remember: gone at once");

        let mut table = PerIp::new(1, 60, 100);
        table.admit(A, now).expect("admitted");
        table.release(A, now);
        assert_eq!(table.len(), 1, "its bucket is not full yet");
    }

    /// However many addresses come, the table stays at its cap; addresses with WebSockets open
    /// keep their counts, so the cap still holds for them.
    #[test]
    fn the_table_never_grows_past_its_cap() {
        let now = Instant::now();
        let mut table = PerIp::new(1, 10, 64);
        table.admit(A, now).expect("admitted");
        for n in 0..10_000 {
            // Each a fresh address with a short-lived WebSocket, its bucket not full again
            // for a while.
            table.admit(v4(n), now).expect("admitted");
            table.release(v4(n), now);
            assert!(table.len() <= 64, "{} entries", table.len());
        }
        assert_eq!(table.admit(A, now), Err(Refusal::TooMany { max: 1 }));
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let now = Instant::now();
        let mut table = PerIp::new(1, 0, 100);
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("an address");
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("an address");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("an address");
        assert_eq!(table.admit(one, now), Ok(()));
        assert_eq!(table.admit(same_64, now), Err(Refusal::TooMany { max: 1 }));
        assert_eq!(table.admit(other_64, now), Ok(()));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("an address");
        assert_eq!(table.admit(A, now), Ok(()));
        assert_eq!(table.admit(mapped, now), Err(Refusal::TooMany { max: 1 }));
    }
}
