//! What a client's frames ask for: each passes the rate limit, is decoded, and becomes a chat
//! message for the room, a typing notice, a join or a rename, a page of history, or an `error`
//! frame back.

use bytes::Bytes;

use crate::engine::Engine;
use crate::names::refused_text_char;
use crate::protocol::{self, Command, ErrorCode, Outgoing, ProtocolError};
use crate::time::rfc3339_millis;
use crate::{CloseReason, Now, Output, ServerMessage};

impl Engine {
    /// One text frame from the client in `slot`.
    pub(crate) fn on_frame(&mut self, slot: usize, now: Now, text: &str) {
        let config = &self.config;
        let client = &mut self.clients[slot];
        client.last_seen = now.mono;
        if !client.rate.try_acquire(
            now.mono,
            config.rate_limit_burst,
            config.rate_limit_per_second,
        ) {
            client.strikes += 1;
            self.stats.rate_limited_total += 1;
            if config.rate_limit_strikes_max > 0 && client.strikes >= config.rate_limit_strikes_max
            {
                self.doom(slot, CloseReason::Flooding);
            } else {
                let message = format!(
                    "slow down: at most {} messages per second (bursts of {})",
                    config.rate_limit_per_second, config.rate_limit_burst
                );
                self.reply_error(slot, now, ErrorCode::RateLimited, &message);
            }
            return;
        }
        client.strikes = 0;
        let command = protocol::decode(text);
        if matches!(
            command,
            Ok(Command::Join(_) | Command::Nick { .. } | Command::History { .. })
        ) && !client.membership_rate.try_acquire_every(
            now.mono,
            config.membership_rate_burst,
            config.membership_rate_interval,
        ) {
            self.stats.rate_limited_total += 1;
            let message = format!(
                "slow down: joins, room switches, renames and history pages at most one per {} \
                 (bursts of {})",
                humantime::format_duration(config.membership_rate_interval),
                config.membership_rate_burst
            );
            return self.reply_error(slot, now, ErrorCode::RateLimited, &message);
        }
        match command {
            Err(ProtocolError { code, message }) => self.reply_error(slot, now, code, &message),
            Ok(Command::Message { text }) => self.post(slot, now, &text),
            Ok(Command::Join(join)) => self.join(slot, now, join),
            Ok(Command::Nick { nick }) => self.change_nick(slot, now, &nick),
            Ok(Command::Typing) => self.typing(slot, now),
            Ok(Command::Who { after }) => self.who(slot, now, after.as_deref()),
            Ok(Command::History { before, limit }) => self.history(slot, now, before, limit),
        }
    }

    /// An `error` frame to one client; it changes nothing else.
    pub(crate) fn reply_error(&mut self, slot: usize, now: Now, code: ErrorCode, message: &str) {
        self.stats.errors_total += 1;
        let frame = Outgoing::Error {
            code: code.as_str(),
            message,
        }
        .to_frame();
        self.send_to(slot, now, frame);
    }

    /// A chat message: validated, numbered, kept in history and broadcast to the whole room (the
    /// sender's own copy is its acknowledgement); with `hold_until_committed`, handed to the
    /// store and held until its commit instead (see `commit`).
    fn post(&mut self, slot: usize, now: Now, text: &str) {
        let Some(r) = self.clients[slot].room else {
            return self.reply_error(
                slot,
                now,
                ErrorCode::NotInRoom,
                "join a room before sending messages",
            );
        };
        let text = text.trim();
        if text.is_empty() {
            return self.reply_error(
                slot,
                now,
                ErrorCode::EmptyMessage,
                "a message needs some text",
            );
        }
        let max = self.config.text_bytes_max;
        if text.len() > max {
            let message = format!(
                "a message has at most {max} bytes (this one has {})",
                text.len()
            );
            return self.reply_error(slot, now, ErrorCode::MessageTooLong, &message);
        }
        if let Some(bad) = refused_text_char(text) {
            let message = format!(
                "a message may not contain control characters or bidi overrides \
                 (this one has U+{:04X})",
                u32::from(bad)
            );
            return self.reply_error(slot, now, ErrorCode::InvalidText, &message);
        }
        let hold = self.config.hold_until_committed;
        if hold && self.uncommitted.len() >= self.config.uncommitted_max {
            let message = format!(
                "unavailable: {} messages wait to be stored; try again shortly",
                self.config.uncommitted_max
            );
            return self.reply_error(slot, now, ErrorCode::Unavailable, &message);
        }
        // A message ends its sender's typing: the next keystroke starts another, relayed at
        // once (the web client sends it at once; left throttled, a hint typed within
        // `typing_interval` of the last one never showed).
        self.clients[slot].typing_at = None;
        if self.config.ordered_by_broker {
            let frame = Outgoing::Message {
                room: &self.rooms[r].name,
                seq: 0,
                nick: &self.clients[slot].nick,
                text,
                ts: &rfc3339_millis(now.wall),
            }
            .to_frame();
            return self.publish(slot, r, frame, now);
        }
        self.activity += 1;
        let room = &mut self.rooms[r];
        room.assigned += 1;
        room.last_active = self.activity;
        let seq = room.assigned;
        let ts = rfc3339_millis(now.wall);
        let frame = Outgoing::Message {
            room: &room.name,
            seq,
            nick: &self.clients[slot].nick,
            text,
            ts: &ts,
        }
        .to_frame();
        if hold {
            let sender = self.clients[slot].id;
            return self.hold(r, seq, frame, sender);
        }
        if self.config.store_relaxed {
            self.ask_store(r, seq, frame.clone());
        }
        self.release(r, seq, frame, now);
    }

    /// A message from now on: kept in room `r`'s history as its latest and broadcast to its
    /// members (the sender's own copy is its acknowledgement).
    pub(crate) fn release(&mut self, r: usize, seq: u64, frame: bytes::Bytes, now: Now) {
        self.rooms[r].seq = seq;
        let budget = self.history_budget();
        (self.histories).remember(&mut self.rooms, r, seq, frame.clone(), budget);
        self.stats.messages_total += 1;
        self.broadcast(r, &frame, None, now);
    }

    /// "I am typing": relayed to the others in a small room, never stored, at most once per
    /// `typing_interval` per client. A large room does not relay it: one typist would cost every
    /// member a frame.
    fn typing(&mut self, slot: usize, now: Now) {
        let client = &self.clients[slot];
        let Some(r) = client.room else {
            return self.reply_error(slot, now, ErrorCode::NotInRoom, "join a room first");
        };
        if !self.announces_at_once(r) {
            return;
        }
        let interval = self.config.typing_interval;
        if client.typing_at.is_some_and(|at| now.mono < at + interval) {
            return;
        }
        self.clients[slot].typing_at = Some(now.mono);
        let client = &self.clients[slot];
        let room = &self.rooms[r];
        let frame = Outgoing::Typing {
            room: &room.name,
            nick: &client.nick,
        }
        .to_frame();
        if self.config.ordered_by_broker {
            let room = room.name.clone();
            self.outputs.push_back(Output::Relay {
                room,
                frame: frame.clone(),
            });
        }
        self.broadcast(r, &frame, Some(slot), now);
    }

    /// A typing notice from another node: to every member here, where the room relays typing.
    pub(crate) fn on_relayed(&mut self, room: &str, frame: &Bytes, now: Now) {
        let Some(&r) = self.room_index.get(&crate::names::room_likeness(room)) else {
            return;
        };
        if !self.announces_at_once(r) {
            return;
        }
        let is_typing = matches!(
            serde_json::from_slice::<ServerMessage>(frame),
            Ok(ServerMessage::Typing { room: named, .. }) if named == room
        );
        if is_typing {
            self.broadcast(r, frame, None, now);
        }
    }
}
