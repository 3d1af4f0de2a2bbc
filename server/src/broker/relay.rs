//! What nodes tell each other outside the rooms' order, on the relay channel
//! ([`RELAY`](super::redis::keys::RELAY)): typing notices for the members on other nodes, an
//! operator's kick for the node that holds the member, and each node's seat announcements
//! (`seats`). Pub/sub, so best effort: a relay lost while a node is away is a typing hint or a
//! kick the operator is told was sent, never a message; a lost announcement is a gap in its
//! node's numbers, which `seats` repairs from Redis.

use serde::{Deserialize, Serialize};

/// One relay, as JSON on the channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Relay {
    /// A typing notice of `room`, from node `from` (whose members already have it).
    Typing {
        from: String,
        room: String,
        frame: String,
    },
    /// Kick `nick` out of `room`: for node `to`, which holds the name.
    Kick {
        to: String,
        room: String,
        nick: String,
    },
    /// Node `from`'s seat changes, its `n`th announcement (see `seats`); `full`: all its seats.
    Seats {
        from: String,
        n: u64,
        full: bool,
        changes: Vec<super::seats::Change>,
    },
}

impl Relay {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a relay always serializes")
    }

    pub(crate) fn decode(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }
}

/// The node of a claim's owner (`<node epoch>/<client>`, see `nicks`).
pub(crate) fn owner_node(owner: &str) -> &str {
    owner.rsplit_once('/').map_or(owner, |(node, _)| node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_round_trip_and_garbage_is_none() {
        for relay in [
            Relay::Typing {
                from: "n1".into(),
                room: "lobby".into(),
                frame: r#"{"type":"typing","room":"lobby","nick":"ann"}"#.into(),
            },
            Relay::Kick {
                to: "n2".into(),
                room: "lobby".into(),
                nick: "bob".into(),
            },
        ] {
            assert_eq!(Relay::decode(&relay.encode()), Some(relay));
        }
        let kick = br#"{"kind":"kick","to":"n","room":"r","nick":"x"}"#;
        assert!(matches!(Relay::decode(kick), Some(Relay::Kick { .. })));
        for garbage in [&b"{}"[..], b"not json", br#"{"kind":"shout","room":"r"}"#] {
            assert_eq!(Relay::decode(garbage), None);
        }
    }

    #[test]
    fn an_owner_names_its_node_before_the_last_slash() {
        assert_eq!(owner_node("18ed5f/42"), "18ed5f");
        assert_eq!(owner_node("a/b/7"), "a/b");
        assert_eq!(owner_node("plain"), "plain");
    }
}
