//! What a client leaves behind for the next connection from its address: its message and
//! membership buckets, until they have refilled.
//!
//! Without it, a flooder that reconnects in a loop gets a fresh burst with every connection.
//! An address is an IPv4 address or an IPv6 /64 (one subscriber's share, usually). Clients
//! behind one NAT share what the last of them left, which refills at the normal rate: an honest
//! neighbour waits at most one refill, never longer. The table holds at most `clients_max`
//! entries, each dropped once its buckets are full again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use crate::rate::RateLimit;

/// Where a connection comes from, as far as the rate limits are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum AddrKey {
    V4(u32),
    /// The first 64 bits.
    V6(u64),
}

impl AddrKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(u32::from(v4)),
                None => Self::V6(u64::try_from(u128::from(v6) >> 64).expect("64 bits")),
            },
        }
    }
}

/// The buckets a client left with.
#[derive(Clone, Debug)]
pub(crate) struct Left {
    pub(crate) rate: RateLimit,
    pub(crate) membership: RateLimit,
    /// When both are full again: the entry is worth nothing after it.
    refilled_at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Departures {
    by_addr: BTreeMap<AddrKey, Left>,
    by_refill: BTreeSet<(Instant, AddrKey)>,
}

impl Departures {
    /// Notes the buckets a client from `addr` leaves with at `now`, if they are not full. Two
    /// clients leaving from one address leave the stricter of each bucket.
    pub(crate) fn leave(
        &mut self,
        addr: AddrKey,
        rate: &RateLimit,
        membership: &RateLimit,
        now: Instant,
        max: usize,
    ) {
        self.expire(now);
        let (mut rate, mut membership) = (rate.clone(), membership.clone());
        if let Some(earlier) = self.take(addr) {
            rate = rate.stricter(earlier.rate);
            membership = membership.stricter(earlier.membership);
        }
        let refilled_at = [rate.full_at(), membership.full_at()]
            .into_iter()
            .flatten()
            .max();
        let Some(refilled_at) = refilled_at.filter(|&at| at > now) else {
            return;
        };
        if self.by_addr.len() >= max {
            // The entry nearest to worthless makes room.
            if let Some((_, soonest)) = self.by_refill.pop_first() {
                self.by_addr.remove(&soonest);
            }
        }
        if max == 0 {
            return;
        }
        self.by_refill.insert((refilled_at, addr));
        let left = Left {
            rate,
            membership,
            refilled_at,
        };
        self.by_addr.insert(addr, left);
    }

    /// What the last client from `addr` left, for a new connection from it at `now`.
    pub(crate) fn arrive(&mut self, addr: AddrKey, now: Instant) -> Option<Left> {
        self.expire(now);
        self.take(addr)
    }

    fn take(&mut self, addr: AddrKey) -> Option<Left> {
        let left = self.by_addr.remove(&addr)?;
        self.by_refill.remove(&(left.refilled_at, addr));
        Some(left)
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, addr)) = self.by_refill.first() {
            if at > now {
                break;
            }
            self.by_refill.pop_first();
            self.by_addr.remove(&addr);
        }
    }

    pub(crate) fn len(&self) -> usize {
        debug_assert_eq!(self.by_addr.len(), self.by_refill.len());
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn an_ipv6_address_counts_by_its_64_and_a_mapped_ipv4_as_itself() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddrKey::of(a.into()), AddrKey::of(b.into()));
        assert_ne!(AddrKey::of(a.into()), AddrKey::of(c.into()));
        let v4 = Ipv4Addr::new(192, 0, 2, 7);
        assert_eq!(
            AddrKey::of(v4.to_ipv6_mapped().into()),
            AddrKey::of(v4.into())
        );
        assert_ne!(
            AddrKey::of(Ipv6Addr::UNSPECIFIED.into()),
            AddrKey::of(Ipv4Addr::UNSPECIFIED.into())
        );
    }
}
