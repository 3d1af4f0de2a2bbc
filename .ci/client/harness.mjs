// Drives a Session the way main.js does, with a fake clock, timers and socket, and records what
// the page would show. Helpers speak the server's side of the protocol. The member list is kept
// the way view.js keeps it, one row per key applied op by op, so a test sees what the page shows
// and how much work each event cost it.
import assert from 'node:assert/strict';

import { compareKeys, nickKey } from '../../static/roster.js';
import { Session } from '../../static/session.js';

export const LIMITS = Object.freeze({ textBytesMax: 300, nickCharsMax: 16, roomCharsMax: 16, defaultRoom: 'lobby' });

export class Harness {
  constructor({ hash = '#lobby', seed = 7, online = true, storedNick = '' } = {}) {
    this.session = new Session({ limits: LIMITS, wsBase: 'ws://chat.test', hash, online, seed });
    this.now = 1_000_000;
    this.conn = 0; // the socket the session last asked for (0: none)
    this.connects = []; // every URL it connected to
    this.sent = []; // frames sent, parsed
    this.timers = new Map(); // name -> {at, ms}
    this.scheduled = []; // every {name, ms} scheduled
    this.log = []; // what the conversation shows: {message} or {notice}
    this.renders = [];
    this.rows = new Rows(); // the member list as view.js draws it
    this.rosterOps = []; // the ops of every roster render, one array per render
    this.handle({ type: 'start', storedNick });
  }

  handle(event) {
    const effects = this.session.handle({ ...event, now: this.now });
    for (const effect of effects) this.apply(effect);
    return effects;
  }

  apply(effect) {
    switch (effect.type) {
      case 'connect':
        this.conn = effect.conn;
        this.connects.push(new URL(effect.url));
        break;
      case 'disconnect': this.conn = 0; break;
      case 'send': this.sent.push(JSON.parse(effect.frame)); break;
      case 'schedule':
        this.timers.set(effect.name, { at: this.now + effect.ms, ms: effect.ms });
        this.scheduled.push({ name: effect.name, ms: effect.ms });
        break;
      case 'cancel': this.timers.delete(effect.name); break;
      case 'render':
        this.renders.push(effect);
        if (effect.view === 'clearLog') this.log = [];
        if (effect.view === 'message') this.log.push({ message: effect });
        if (effect.view === 'notice') this.log.push({ notice: effect.text });
        if (effect.view === 'roster') {
          this.rows.apply(effect.ops);
          this.rosterOps.push(effect.ops);
        }
        break;
      default: break;
    }
  }

  /** Moves the clock on, firing due timers in order. */
  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.timers].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [name, { at }] = due;
      this.timers.delete(name);
      this.now = at;
      this.handle({ type: 'timer', name });
    }
    this.now = until;
  }

  /** Fires the pending reconnect timer at once; returns the delay it had been given. */
  fireReconnect() {
    const timer = this.timers.get('reconnect');
    assert.ok(timer, 'a reconnect is scheduled');
    this.advance(timer.at - this.now);
    return timer.ms;
  }

  // ---- the server's side of the socket
  open() { return this.handle({ type: 'open', conn: this.conn }); }
  frame(msg) { return this.handle({ type: 'frame', conn: this.conn, data: JSON.stringify(msg) }); }
  close(code = 1006) { return this.handle({ type: 'close', conn: this.conn, code }); }

  /** Without a `user_count`, the room is `users` and the joiner, listed whole as the server
   *  would (in its order, the joiner included); with one, `users` is sent as the first page. */
  welcome({ nick = 'ann', room = 'lobby', users = [], history = [], seq = 0, epoch = 'e1', recovered = false, user_count: userCount } = {}) {
    let page = users;
    if (userCount === undefined) {
      const byKey = new Map([...users, nick].map((u) => [nickKey(u), u]));
      page = [...byKey.keys()].sort(compareKeys).map((key) => byKey.get(key));
      userCount = page.length;
    }
    return this.frame({ type: 'welcome', nick, room, users: page, user_count: userCount, history, recovered, seq, epoch });
  }

  /** Signs in from the nickname form and completes the connect with a welcome. */
  signIn(nick = 'ann', welcome = {}) {
    this.handle({ type: 'submitNick', nick });
    this.open();
    this.welcome({ nick, ...welcome });
  }

  get lastUrl() { return this.connects[this.connects.length - 1]; }
  get notices() { return this.log.filter((item) => item.notice).map((item) => item.notice); }
  /** Texts of the messages the log shows, in order. */
  get shown() { return this.log.filter((item) => item.message).map((item) => item.message.text); }
  get phase() { return this.session.phase; }
  /** The names the member list shows, top to bottom. */
  get users() { return this.rows.names(); }
  /** The member list's labels as last drawn: {count, more, stale, loading}. */
  get roster() {
    const { count, more, stale, loading } = this.renders.filter((r) => r.view === 'roster').pop();
    return { count, more, stale, loading };
  }
  /** The `who` frames sent, parsed. */
  get whos() { return this.sent.filter((f) => f.type === 'who'); }
}

export function message(seq, text, { nick = 'bob', room = 'lobby' } = {}) {
  return { type: 'message', room, seq, nick, text, ts: '2026-11-22T03:04:05.123Z' };
}

/** Rows keyed like view.js's Map of <li>, strict where the DOM would be lenient: an op naming a
 *  row that is not there fails the test instead of landing at the end of the list. */
export class Rows {
  constructor() {
    this.order = []; // {key, nick, me}
  }

  index(key) {
    return this.order.findIndex((row) => row.key === key);
  }

  apply(ops) {
    for (const op of ops) {
      if (op.op === 'reset') {
        this.order = [];
      } else if (op.op === 'remove') {
        const at = this.index(op.key);
        assert.ok(at >= 0, `remove of a row that is not shown: ${op.key}`);
        this.order.splice(at, 1);
      } else if (op.op === 'add') {
        const old = this.index(op.key);
        if (old >= 0) this.order.splice(old, 1);
        const at = op.before == null ? this.order.length : this.index(op.before);
        assert.ok(at >= 0, `add of ${op.key} before a row that is not shown: ${op.before}`);
        this.order.splice(at, 0, { key: op.key, nick: op.nick, me: op.me });
      } else {
        assert.fail(`unknown roster op ${JSON.stringify(op)}`);
      }
    }
  }

  names() {
    return this.order.map((row) => row.nick);
  }
}
