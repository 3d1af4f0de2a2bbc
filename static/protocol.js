// The wire protocol as the client sees it (README, "Wire protocol"): reading server frames,
// building client frames and the /ws query, the name rules, and the sentence shown for every
// error code, close code and leave reason. Pure: no DOM, no sockets, no clock.
//
// The close codes and leave reasons here are exactly those the server sends (it lists them in
// /config.json, and the browser test checks each has a text); anything else gets a generic text.

/** A server frame as an object, or null when it is not a JSON object with a string `type`. */
export function parseServerFrame(data) {
  let msg;
  try {
    msg = JSON.parse(data);
  } catch (_) {
    return null;
  }
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return null;
  return msg;
}

// ---------------------------------------------------------------- client frames

export function messageFrame(text) {
  return JSON.stringify({ type: 'message', text });
}

/** `resume` is `{since, epoch}` to ask for what was missed, or null. */
export function joinFrame({ room, nick, resume }) {
  const msg = { type: 'join', room, nick };
  if (resume) {
    msg.since = resume.since;
    msg.epoch = resume.epoch;
  }
  return JSON.stringify(msg);
}

export function nickFrame(nick) {
  return JSON.stringify({ type: 'nick', nick });
}

export function typingFrame() {
  return JSON.stringify({ type: 'typing' });
}

/** Asks for a page of the room's members: those after `after` in the server's order (the
 *  `next` of the previous page), or the first page when `after` is null. */
export function whoFrame(after) {
  return JSON.stringify(after == null ? { type: 'who' } : { type: 'who', after });
}

/** Asks for up to `limit` messages of the current room older than seq `before`, oldest first;
 *  the answer is a `history` frame, whose `complete` says nothing older exists. */
export function historyFrame(before, limit) {
  return JSON.stringify({ type: 'history', before, limit });
}

/** The query of `/ws`: the same fields as a join, given at connect time. */
export function connectQuery({ room, nick, resume }) {
  const params = new URLSearchParams();
  params.set('nick', nick);
  params.set('room', room);
  if (resume) {
    params.set('since', String(resume.since));
    params.set('epoch', resume.epoch);
  }
  return params.toString();
}

// ---------------------------------------------------------------- names and sizes

export function utf8Bytes(text) {
  return new TextEncoder().encode(text).length;
}

/** Why the server would refuse this nickname, or null. `limits` comes from /config.json. */
export function checkNick(nick, limits) {
  const chars = [...nick].length;
  if (chars === 0) return 'Please enter a nickname.';
  if (chars > limits.nickCharsMax) return `A nickname can have at most ${limits.nickCharsMax} characters.`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(nick)) return 'A nickname cannot contain control characters.';
  if (/^guest-/i.test(nick)) return 'Nicknames starting with "guest-" are reserved. Please pick another.';
  return null;
}

/** Why the server would refuse this room name, or null. */
export function checkRoom(room, limits) {
  const chars = [...room].length;
  if (chars === 0) return 'Please enter a room name.';
  if (chars > limits.roomCharsMax) return `A room name can have at most ${limits.roomCharsMax} characters.`;
  if (!/^[\p{L}\p{N}._-]+$/u.test(room)) {
    return 'Room names can only use letters, numbers, "-", "_" and ".".';
  }
  return null;
}

// ---------------------------------------------------------------- error codes

/** One sentence per `error` code (README, "Error codes"). */
export const ERROR_TEXTS = Object.freeze({
  invalid_json: () => 'The server could not understand the last request. Please reload the page.',
  unknown_type: () => 'The server could not understand the last request. Please reload the page.',
  invalid_field: () => 'The server refused part of the last request. Please reload the page.',
  empty_message: () => 'You cannot send an empty message.',
  message_too_long: (limits) => `That message is too long (the limit is ${limits.textBytesMax} bytes). Please shorten it.`,
  invalid_text: () => 'That message contains invisible control characters or text-direction overrides. Please remove them.',
  invalid_nick: () => 'That nickname is not allowed. Please pick another.',
  nick_taken: () => 'That nickname is already taken in this room. Please pick another.',
  invalid_room: () => 'That room name is not valid. Room names can only use letters, numbers, "-", "_" and ".".',
  not_in_room: () => 'You are not in a room right now, so the message was not sent.',
  rate_limited: () => 'You are sending messages too fast. Please wait a moment.',
  too_many_rooms: () => 'The server cannot open another room right now. Please try an existing room.',
  unavailable: () => 'The server cannot save messages right now, so that one was not sent. Please try again in a moment.',
});

/** The sentence for an `error` frame; unknown codes show the server's own message. */
export function describeError(err, limits) {
  const code = err && err.code;
  const text = Object.hasOwn(ERROR_TEXTS, code) ? ERROR_TEXTS[code] : null;
  if (!text) return 'The server reported a problem' + (err && err.message ? ': ' + err.message : '.');
  // The server says which rule the nickname broke; that helps more than the generic sentence.
  if (code === 'invalid_nick' && err.message) return `That nickname is not allowed (${err.message}). Please pick another.`;
  return text(limits);
}

// ---------------------------------------------------------------- close codes

/** One sentence per close code the server sends (README, "Close codes"). */
export const CLOSE_TEXTS = Object.freeze({
  1000: 'The connection was closed.',
  1001: 'The server is restarting.',
  1002: 'The server closed the connection because of a protocol error.',
  1003: 'The server closed the connection because it received data it does not accept.',
  1007: 'The server closed the connection because a message was not valid text.',
  1008: 'The server closed the connection for breaking its rules (too many messages or pings, or a message that never finished).',
  1009: 'The server closed the connection because a message was too big.',
  1013: 'The server is full right now.',
  4000: 'You were disconnected after being idle for too long.',
  4001: 'Your connection was too slow to keep up, so the server dropped it.',
  4003: 'You were disconnected by an operator.',
});

/** The sentence for a close; 1006 (no close frame: the network or the server went away) and any
 *  unknown code get the generic one. */
export function describeClose(code) {
  return Object.hasOwn(CLOSE_TEXTS, code) ? CLOSE_TEXTS[code] : 'The connection to the server was lost.';
}

// ---------------------------------------------------------------- leave reasons

/** One notice per `leave` reason (README, "Leave reasons"). */
export const LEAVE_TEXTS = Object.freeze({
  left: (nick) => `${nick} left`,
  switched: (nick) => `${nick} moved to another room`,
  evicted: (nick) => `${nick} lost the connection`,
  timeout: (nick) => `${nick} timed out`,
  flooding: (nick) => `${nick} was disconnected for sending too many messages`,
  kicked: (nick) => `${nick} was removed by an operator`,
});

/** The notice for a `leave` frame; an unknown reason reads as a plain leave. */
export function leaveText(ev) {
  const text = Object.hasOwn(LEAVE_TEXTS, ev.reason) ? LEAVE_TEXTS[ev.reason] : LEAVE_TEXTS.left;
  return text(ev.nick);
}
