//! The wire protocol: decoding client frames into commands, and the JSON shapes the server sends.
//!
//! Every frame is a JSON object with a `type`, except that a frame which does not start with `{`
//! is a chat message with that text, so a bare `ws.send("hi")` or `websocat` just works.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use serde_json::value::RawValue;

/// What a client asked for in one text frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Post `text` to the current room.
    Message {
        /// The text as sent (trimmed and checked by the engine).
        text: String,
    },
    /// Join (or switch to, or re-join) a room.
    Join(JoinRequest),
    /// Change nickname in the current room.
    Nick {
        /// The nickname asked for.
        nick: String,
    },
    /// "I am typing": relayed to the room, never stored.
    Typing,
    /// A page of the room's members, in nickname order after `after`.
    Who {
        /// The last nickname of the previous page (`next` of the `users` answer).
        after: Option<String>,
    },
    /// A page of the current room's older messages (scrollback).
    History {
        /// Messages with a seq below this one; the newest when absent.
        before: Option<u64>,
        /// How many at most, from 1 to [`HISTORY_PAGE_MAX`]; [`HISTORY_PAGE_DEFAULT`] when absent.
        limit: Option<u64>,
    },
}

/// The most messages one `history` page holds.
pub const HISTORY_PAGE_MAX: usize = 100;
/// A `history` page's size when the request names none.
pub const HISTORY_PAGE_DEFAULT: usize = 50;

/// The optional fields of a join; also what `/ws?nick=&room=&since=&epoch=` carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The room to join; the current one (or the default room) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The nickname to take; the current one (or a guest name) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    /// Last `seq` the client saw in this room; with a matching `epoch` it asks for what followed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// The room's epoch the client's `since` counts in (from an earlier `welcome`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// Stable machine-readable error codes of `error` frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The frame starts with `{` but is not one valid JSON object.
    InvalidJson,
    /// The `type` names no command.
    UnknownType,
    /// A field is missing or has the wrong JSON type.
    InvalidField,
    /// The message text is empty after trimming.
    EmptyMessage,
    /// The message text is over `text_bytes_max`.
    MessageTooLong,
    /// The message text holds a control character or a bidi override (see
    /// [`refused_text_char`](crate::names::refused_text_char)).
    InvalidText,
    /// The nickname breaks the nickname rules.
    InvalidNick,
    /// Someone in the room already uses that nickname (ignoring case).
    NickTaken,
    /// The room name breaks the room-name rules.
    InvalidRoom,
    /// The command needs a room and the client is in none.
    NotInRoom,
    /// Over the rate limit: the frame was dropped.
    RateLimited,
    /// No room can be created: `rooms_max` rooms exist and none is empty.
    TooManyRooms,
    /// The message was not accepted: the store cannot take writes now (`uncommitted_max`
    /// messages wait for their commit). Sending it again later may work.
    Unavailable,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidJson,
        ErrorCode::UnknownType,
        ErrorCode::InvalidField,
        ErrorCode::EmptyMessage,
        ErrorCode::MessageTooLong,
        ErrorCode::InvalidText,
        ErrorCode::InvalidNick,
        ErrorCode::NickTaken,
        ErrorCode::InvalidRoom,
        ErrorCode::NotInRoom,
        ErrorCode::RateLimited,
        ErrorCode::TooManyRooms,
        ErrorCode::Unavailable,
    ];

    /// The wire spelling (the `code` of the `error` frame).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::InvalidText => "invalid_text",
            ErrorCode::InvalidNick => "invalid_nick",
            ErrorCode::NickTaken => "nick_taken",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// A refused frame: the code for programs, the message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence saying what was wrong.
    pub message: String,
}

impl ProtocolError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Decodes one client text frame.
pub fn decode(text: &str) -> Result<Command, ProtocolError> {
    if !text.trim_start().starts_with('{') {
        return Ok(Command::Message {
            text: text.to_owned(),
        });
    }
    // Field values stay raw JSON until read as the exact type wanted. Never `Value`: with the
    // `raw_value` feature, serde_json reads an object keyed `$serde_json::private::RawValue` as
    // the JSON text it holds, so `{"text":{"$serde_json::private::RawValue":"\"hi\""}}` passed
    // as a string and `{"x":{"$serde_json::private::RawValue":null}}` as malformed JSON.
    let mut object: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(malformed)?;
    let kind: String = match object.remove("type") {
        Some(raw) => read(raw, "type", "a string")?,
        None => {
            return Err(ProtocolError::new(
                ErrorCode::InvalidField,
                "missing field \"type\"",
            ))
        }
    };
    match kind.as_str() {
        "message" => Ok(Command::Message {
            text: take(&mut object, "text", "a string")?
                .ok_or_else(|| missing("text", "message"))?,
        }),
        "join" => Ok(Command::Join(JoinRequest {
            room: take(&mut object, "room", "a string")?,
            nick: take(&mut object, "nick", "a string")?,
            since: take(&mut object, "since", "a non-negative integer")?,
            epoch: take(&mut object, "epoch", "a string")?,
        })),
        "nick" => Ok(Command::Nick {
            nick: take(&mut object, "nick", "a string")?.ok_or_else(|| missing("nick", "nick"))?,
        }),
        "typing" => Ok(Command::Typing),
        "who" => Ok(Command::Who {
            after: take(&mut object, "after", "a string")?,
        }),
        "history" => Ok(Command::History {
            before: take(&mut object, "before", "a non-negative integer")?,
            limit: take(&mut object, "limit", "a non-negative integer")?,
        }),
        other => Err(ProtocolError::new(
            ErrorCode::UnknownType,
            format!("unknown type {other:?}: expected message, join, nick, typing, who or history"),
        )),
    }
}

/// Reads one field as `T`: a value of another JSON type is `invalid_field`, an undecodable one
/// (a lone surrogate escape) `invalid_json`.
fn read<T: DeserializeOwned>(
    raw: &RawValue,
    field: &str,
    expected: &str,
) -> Result<T, ProtocolError> {
    serde_json::from_str(raw.get()).map_err(|e| match e.classify() {
        Category::Data => wrong_type(field, expected),
        _ => malformed(e),
    })
}

/// An optional field: absent and `null` are both `None`.
fn take<T: DeserializeOwned>(
    object: &mut BTreeMap<String, &RawValue>,
    field: &str,
    expected: &str,
) -> Result<Option<T>, ProtocolError> {
    match object.remove(field) {
        None => Ok(None),
        Some(raw) => read::<Option<T>>(raw, field, expected),
    }
}

fn malformed(e: serde_json::Error) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidJson, format!("malformed JSON: {e}"))
}

fn wrong_type(field: &str, expected: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::InvalidField,
        format!("field {field:?} must be {expected}"),
    )
}

fn missing(field: &str, kind: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::InvalidField,
        format!("a {kind:?} frame needs the field {field:?}"),
    )
}

impl Command {
    /// The canonical JSON of this command; `decode(cmd.encode()) == cmd`.
    pub fn encode(&self) -> String {
        let value = match self {
            Command::Message { text } => serde_json::json!({"type": "message", "text": text}),
            Command::Join(join) => {
                let mut value = serde_json::to_value(join)
                    .expect("JoinRequest has only string and integer fields");
                value["type"] = "join".into();
                value
            }
            Command::Nick { nick } => serde_json::json!({"type": "nick", "nick": nick}),
            Command::Typing => serde_json::json!({"type": "typing"}),
            Command::Who { after: None } => serde_json::json!({"type": "who"}),
            Command::Who { after: Some(after) } => {
                serde_json::json!({"type": "who", "after": after})
            }
            Command::History { before, limit } => {
                let mut value = serde_json::json!({"type": "history"});
                if let Some(before) = before {
                    value["before"] = (*before).into();
                }
                if let Some(limit) = limit {
                    value["limit"] = (*limit).into();
                }
                value
            }
        };
        value.to_string()
    }
}

/// One chat message as the server sends it (also an element of `welcome.history`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The room it was posted in.
    pub room: String,
    /// Its place in the room's order, from 1.
    pub seq: u64,
    /// The sender's nickname, stamped by the server.
    pub nick: String,
    /// The text, trimmed.
    pub text: String,
    /// When the server accepted it: RFC 3339 UTC with milliseconds.
    pub ts: String,
}

/// Every frame the server sends, owned, for clients of this protocol (simulations, load tools).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// The greeting on every (re)join, to the joiner only.
    Welcome {
        /// The joiner's nickname.
        nick: String,
        /// The room joined.
        room: String,
        /// Members' nicknames: the first `presence_list_max` in nickname order (page the rest
        /// with `who`).
        users: Vec<String>,
        /// Members of the room, the joiner included.
        user_count: usize,
        /// What was missed (recovered) or the latest messages, oldest first.
        history: Vec<ChatMessage>,
        /// `history` is exactly what followed the join's `since`.
        recovered: bool,
        /// The room's latest `seq`.
        seq: u64,
        /// Names this incarnation of the room's numbering.
        epoch: String,
    },
    /// A chat message, to every member including its sender.
    Message(ChatMessage),
    /// Someone joined the room.
    Join {
        /// The room.
        room: String,
        /// Who joined.
        nick: String,
        /// When.
        ts: String,
    },
    /// Someone left the room.
    Leave {
        /// The room.
        room: String,
        /// Who left.
        nick: String,
        /// When.
        ts: String,
        /// Why: a [`LeaveReason`](crate::LeaveReason) spelling.
        reason: String,
    },
    /// Someone was renamed (the renamed client hears it too).
    Nick {
        /// The room.
        room: String,
        /// The old nickname.
        old: String,
        /// The new nickname.
        nick: String,
        /// When.
        ts: String,
    },
    /// Someone is typing.
    Typing {
        /// The room.
        room: String,
        /// Who.
        nick: String,
    },
    /// A page of the room's members (the answer to `who`).
    Users {
        /// The room.
        room: String,
        /// Up to `presence_list_max` nicknames, in nickname order.
        users: Vec<String>,
        /// Members of the room.
        user_count: usize,
        /// The `after` of the next page; `None` on the last page.
        next: Option<String>,
    },
    /// What changed in a large room since its last presence frame. Apply it as one step:
    /// remove every `left` name and every renamed `old`, then add every renamed `nick` and every
    /// `joined` name.
    Presence {
        /// The room.
        room: String,
        /// Members of the room now.
        user_count: usize,
        /// Who joined.
        joined: Vec<String>,
        /// Who left.
        left: Vec<String>,
        /// Who was renamed.
        renamed: Vec<Renamed>,
        /// Joins beyond those listed.
        joined_more: usize,
        /// Leaves beyond those listed.
        left_more: usize,
        /// Renames beyond those listed.
        renamed_more: usize,
    },
    /// A page of older messages (the answer to `history`).
    History {
        /// The room.
        room: String,
        /// The messages, oldest first, exactly as they were broadcast.
        messages: Vec<ChatMessage>,
        /// Nothing older exists.
        complete: bool,
    },
    /// A frame was refused; nothing else changed.
    Error {
        /// An [`ErrorCode`] spelling.
        code: String,
        /// For people.
        message: String,
    },
}

/// One rename in a `presence` frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renamed {
    /// The old nickname.
    pub old: String,
    /// The new nickname.
    pub nick: String,
}

/// Borrowed twin of `ServerMessage` for serializing without copies; history arrives pre-encoded.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Outgoing<'a> {
    Welcome {
        nick: &'a str,
        room: &'a str,
        /// Pre-serialized: the room's cached first page of names.
        users: &'a serde_json::value::RawValue,
        user_count: usize,
        history: &'a [&'a serde_json::value::RawValue],
        recovered: bool,
        seq: u64,
        epoch: &'a str,
    },
    Message {
        room: &'a str,
        seq: u64,
        nick: &'a str,
        text: &'a str,
        ts: &'a str,
    },
    Join {
        room: &'a str,
        nick: &'a str,
        ts: &'a str,
    },
    Leave {
        room: &'a str,
        nick: &'a str,
        ts: &'a str,
        reason: &'a str,
    },
    Nick {
        room: &'a str,
        old: &'a str,
        nick: &'a str,
        ts: &'a str,
    },
    Typing {
        room: &'a str,
        nick: &'a str,
    },
    Users {
        room: &'a str,
        users: &'a [&'a str],
        user_count: usize,
        next: Option<&'a str>,
    },
    Presence {
        room: &'a str,
        user_count: usize,
        joined: &'a [&'a str],
        left: &'a [&'a str],
        renamed: &'a [RenamedRef<'a>],
        joined_more: usize,
        left_more: usize,
        renamed_more: usize,
    },
    History {
        room: &'a str,
        messages: &'a [&'a serde_json::value::RawValue],
        complete: bool,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

/// Borrowed twin of [`Renamed`].
#[derive(Serialize)]
pub(crate) struct RenamedRef<'a> {
    pub(crate) old: &'a str,
    pub(crate) nick: &'a str,
}

impl Outgoing<'_> {
    /// Serializes once; the result is shared by every recipient.
    pub(crate) fn to_frame(&self) -> bytes::Bytes {
        // Serializing borrowed strings, integers and pre-validated raw JSON cannot fail.
        bytes::Bytes::from(serde_json::to_vec(self).expect("outgoing frames always serialize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        decode(text).expect_err("should be refused").code
    }

    #[test]
    fn plain_text_is_a_message() {
        assert_eq!(
            decode("hello {world}"),
            Ok(Command::Message {
                text: "hello {world}".into()
            })
        );
        assert_eq!(
            decode("[1,2]"),
            Ok(Command::Message {
                text: "[1,2]".into()
            })
        );
    }

    #[test]
    fn each_malformed_shape_has_its_code() {
        assert_eq!(code(r#"{"type":"message""#), ErrorCode::InvalidJson);
        assert_eq!(
            code(r#"{"type":"message","text":"a"} x"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(code(r#"{"type":"shout"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"text":"a"}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::InvalidField);
        assert_eq!(
            code(r#"{"type":"message","text":5}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code(r#"{"type":"message"}"#), ErrorCode::InvalidField);
        assert_eq!(
            code(r#"{"type":"join","since":-1}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"join","room":["a"]}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code(r#"{"type":"nick"}"#), ErrorCode::InvalidField);
    }

    #[test]
    fn unknown_fields_are_ignored_so_nick_cannot_be_smuggled_in() {
        assert_eq!(
            decode(r#"{"type":"message","text":"hi","nick":"mallory"}"#),
            Ok(Command::Message { text: "hi".into() })
        );
    }

    #[test]
    fn commands_round_trip() {
        let commands = [
            Command::Message {
                text: "a \"quoted\" {line}\n".into(),
            },
            Command::Join(JoinRequest {
                room: Some("r".into()),
                nick: None,
                since: Some(41),
                epoch: Some("e".into()),
            }),
            Command::Join(JoinRequest::default()),
            Command::Nick { nick: "n".into() },
            Command::Typing,
            Command::Who { after: None },
            Command::Who {
                after: Some("ann".into()),
            },
        ];
        for command in commands {
            assert_eq!(decode(&command.encode()), Ok(command));
        }
    }

    /// Found by the `protocol_decode` fuzz target: serde_json's `Value` (with the `raw_value`
    /// feature) reads an object keyed `$serde_json::private::RawValue` as the JSON text it holds.
    #[test]
    fn raw_value_token_objects_are_objects() {
        let token = "$serde_json::private::RawValue";
        assert_eq!(
            code(&format!(
                r#"{{"type":"message","text":{{"{token}":"\"hi\""}}}}"#
            )),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(&format!(r#"{{"type":"join","since":{{"{token}":"7"}}}}"#)),
            ErrorCode::InvalidField
        );
        assert_eq!(
            decode(&format!(r#"{{"type":"typing","x":{{"{token}":null}}}}"#)),
            Ok(Command::Typing)
        );
        assert_eq!(
            code(&format!(r#"{{"{token}":null}}"#)),
            ErrorCode::InvalidField
        );
    }

    #[test]
    fn null_fields_are_absent_and_bad_escapes_are_invalid_json() {
        assert_eq!(
            code(r#"{"type":"message","text":null}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(code(r#"{"type":null}"#), ErrorCode::InvalidField);
        assert_eq!(
            decode(r#"{"type":"join","room":null,"nick":null,"since":null,"epoch":null}"#),
            Ok(Command::Join(JoinRequest::default()))
        );
        assert_eq!(
            code(r#"{"type":"message","text":"\ud800"}"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(
            code(r#"{"type":"join","since":1.5}"#),
            ErrorCode::InvalidField
        );
    }

    #[test]
    fn error_codes_are_distinct_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!(seen.insert(s), "duplicate code {s}");
        }
    }
}
