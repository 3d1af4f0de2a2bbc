// What the conversation on screen holds, and the paging of older messages into it: every item of
// the log in order (a message by its "epoch:seq" key, a notice as null), so each message shows
// exactly once however live frames, welcome history and history pages overlap; the oldest message
// of the current epoch, which a `history` request pages back from; and whether a request is in
// flight, the room's beginning is shown, or the server does not know the request at all.
// Pure: no DOM, no sockets, no clock. session.js feeds it and sends what it builds.
//
// Messages of one epoch are shown in seq order: live ones and welcome history are appended only
// if newer than the top of the log, history pages are put above it only if older, so a message
// from before the top is left for the page that covers it and lands in its place.

import { historyFrame } from './protocol.js';

/** Messages one `history` request asks for (the server serves at most 100). */
export const HISTORY_PAGE = 50;
/** Items (messages and notices) the log keeps. Past it, appending drops the oldest; paging back
 *  stops short of it, so a page is never dropped again by the next live message. */
export const LOG_ITEMS_MAX = 1500;

/** Codes that say the server does not know the `history` request: asking again cannot help. */
const UNSUPPORTED_CODES = new Set(['unknown_type', 'unsupported', 'invalid_field']);

export class Scrollback {
  constructor() {
    this.items = []; // key ("epoch:seq") or null, top to bottom
    this.seen = new Set(); // the keys in items
    this.epoch = null; // the epoch whose seq numbers new messages carry
    this.oldestSeq = null; // smallest seq of this.epoch shown
    this.complete = false; // nothing of this.epoch is older than what is shown
    this.request = null; // {room, before} of the `history` in flight
    this.cooling = false; // refused for rate: wait for the retry timer
    this.supported = true; // false once this connection's server refused the request type
  }

  /** A new conversation (another room): nothing is shown. */
  reset() {
    this.items = [];
    this.seen.clear();
    this.epoch = null;
    this.oldestSeq = null;
    this.complete = false;
    this.request = null;
  }

  /** The welcome's epoch. Another epoch numbers afresh: its beginning is not known to be shown. */
  setEpoch(epoch) {
    if (epoch === this.epoch) return;
    this.epoch = epoch;
    this.complete = false;
    this.request = null;
    this.oldestSeq = this.scanOldest();
  }

  scanOldest() {
    let oldest = null;
    const prefix = `${this.epoch}:`;
    for (const key of this.items) {
      if (key == null || !key.startsWith(prefix)) continue;
      const seq = Number(key.slice(prefix.length));
      if (oldest == null || seq < oldest) oldest = seq;
    }
    return oldest;
  }

  /** After a welcome's history: seq numbers start at 1 in every epoch, and seq 0 is an empty
   *  room, so either says the beginning is on screen without asking. */
  welcomed(lastSeq) {
    if (this.oldestSeq === 1 || (this.oldestSeq == null && lastSeq === 0 && !this.hasMessages())) {
      this.complete = true;
    }
  }

  hasMessages() {
    return this.items.some((key) => key != null);
  }

  /** Whether to append a live or welcome message; returns its key ('' for one without a seq),
   *  or null when it is shown already or older than the top of the log. */
  append(m) {
    if (typeof m.seq !== 'number' || this.epoch == null) {
      this.items.push(null);
      return '';
    }
    const key = `${this.epoch}:${m.seq}`;
    if (this.seen.has(key)) return null;
    if (this.oldestSeq != null && m.seq < this.oldestSeq) return null;
    this.seen.add(key);
    this.items.push(key);
    if (this.oldestSeq == null) this.oldestSeq = m.seq;
    return key;
  }

  notice() {
    this.items.push(null);
  }

  /** How many items to drop from the top to stay within LOG_ITEMS_MAX (0 mostly). */
  trim() {
    const drop = Math.max(0, this.items.length - LOG_ITEMS_MAX);
    if (!drop) return 0;
    for (const key of this.items.splice(0, drop)) {
      if (key != null) this.seen.delete(key);
    }
    // The top moved down: what was dropped can be paged back in.
    this.complete = false;
    this.oldestSeq = this.scanOldest();
    return drop;
  }

  /** The seq to page back from: the oldest shown; for an empty log, past the room's latest. */
  before(lastSeq) {
    if (this.oldestSeq != null) return this.oldestSeq;
    // Only another epoch's messages: a page of this one would have no place among them.
    if (this.hasMessages()) return null;
    return typeof lastSeq === 'number' && lastSeq > 0 ? lastSeq + 1 : null;
  }

  /** The `history` frame to send now for `room`, or null (one in flight, nothing older, ...). */
  begin(room, lastSeq) {
    if (!this.supported || this.complete || this.request || this.cooling) return null;
    if (this.items.length + HISTORY_PAGE > LOG_ITEMS_MAX) return null;
    const before = this.before(lastSeq);
    if (before == null) return null;
    this.request = { room, before, top: this.oldestSeq };
    return historyFrame(before, HISTORY_PAGE);
  }

  /** A `history` reply: the messages to put above the top, oldest first, and the key of the top
   *  they go above (null: the top of the log), or null to ignore it (no request, another room).
   *  If the top moved since it was asked for (dropped by the bound), the page is none: the next
   *  request asks from the new top. */
  reply(h) {
    const request = this.request;
    if (!request || h.room !== request.room) return null;
    this.request = null;
    if (this.oldestSeq !== request.top) return { messages: [], anchor: null };
    const anchor = this.oldestSeq == null ? null : `${this.epoch}:${this.oldestSeq}`;
    const bySeq = new Map();
    for (const m of Array.isArray(h.messages) ? h.messages : []) {
      if (!m || typeof m !== 'object' || typeof m.seq !== 'number' || m.seq >= request.before) continue;
      if (m.room != null && m.room !== request.room) continue;
      if (!this.seen.has(`${this.epoch}:${m.seq}`)) bySeq.set(m.seq, m);
    }
    const messages = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    const keys = messages.map((m) => `${this.epoch}:${m.seq}`);
    for (const key of keys) this.seen.add(key);
    // Without an anchor the log has no message (before() saw to that): the page goes on top.
    this.items.splice(anchor == null ? 0 : this.items.indexOf(anchor), 0, ...keys);
    if (messages.length) this.oldestSeq = messages[0].seq;
    // An empty page that is not marked complete would be asked for again and again.
    this.complete = h.complete === true || messages.length === 0 || this.oldestSeq === 1;
    return { messages, anchor };
  }

  /** An `error` frame while a request is in flight and nothing else is waiting for an answer:
   *  'unsupported' (stop asking on this connection), 'cooling' (ask again after the retry
   *  timer), or null when the error is not about history. */
  refused(code) {
    if (!this.request) return null;
    if (UNSUPPORTED_CODES.has(code)) {
      this.request = null;
      this.supported = false;
      return 'unsupported';
    }
    if (code === 'rate_limited') {
      this.request = null;
      this.cooling = true;
      return 'cooling';
    }
    // Not in a room: no answer is coming, and the session shows the error as it is.
    if (code === 'not_in_room') this.request = null;
    return null;
  }

  /** The socket is gone: no answer will come, and the next server may know the request (an
   *  upgrade restarts it), so each connection finds out for itself. */
  connectionLost() {
    this.request = null;
    this.supported = true;
  }

  /** The retry timer fired. */
  cooled() {
    this.cooling = false;
  }

  /** A join was sent: the server's current room changes, so a reply to the request is moot. */
  abandon() {
    this.request = null;
  }

  /** What the page shows above the top of the log. */
  state() {
    return { loading: !!this.request, complete: this.complete };
  }
}
