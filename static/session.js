// The chat session as a sans-IO state machine: connecting and reconnecting with backoff, joining
// and switching rooms, nicknames, `since`/`epoch` bookkeeping, showing each message exactly once
// across reconnects, paging older messages in when the log is scrolled to its top (the
// bookkeeping is scrollback.js's), who is online (roster.js's) and who is typing.
// `session.handle(event)` returns the effects to carry out, in order; it never touches the DOM, a
// socket, a timer, the clock or Math.random (time comes in on events, randomness from a seed), so
// tests drive it with plain objects.
//
// Events ({type, now, ...}; `now` is milliseconds, as from Date.now()):
//   start {storedNick}            open {conn}         frame {conn, data}     close {conn, code}
//   connectFailed {conn}          timer {name}        online / offline
//   submitNick {nick}  cancelLogin  rename  submitMessage {text}  typed {text}
//   submitRoom {room}  hashchange {hash}  retry  moreUsers  refreshUsers
//   logTop {near}                 whether the top of the log is in view (or near it)
// Effects:
//   {type:'connect', conn, url}   replace any socket with a new one; tag its events with `conn`
//   {type:'disconnect'}           close the socket quietly (no close event comes back)
//   {type:'send', frame}          send a text frame on the open socket
//   {type:'schedule', name, ms}   (re)start the timer `name`; it comes back as {type:'timer', name}
//   {type:'cancel', name}         stop the timer `name`
//   {type:'storeNick', nick}      remember the nickname on this device
//   {type:'replaceHash', room}    show #room in the address bar without a history entry
//   {type:'navigate', room}       go to #room (a hashchange event follows)
//   {type:'measureLog'}           answer with a logTop event, measured now (after the renders
//                                 before it); scroll events send logTop only when it changes
//   {type:'render', view, ...}    update one part of the page (see view.js, which has one
//                                 function per `view`)

import {
  checkNick, checkRoom, connectQuery, describeClose, describeError, ERROR_TEXTS, joinFrame,
  leaveText, messageFrame, nickFrame, parseServerFrame, typingFrame, utf8Bytes, whoFrame,
} from './protocol.js';
import { Roster } from './roster.js';
import { Scrollback } from './scrollback.js';

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 20000;
export const TYPING_SEND_EVERY_MS = 2000;
export const TYPING_SHOW_MS = 4000;
/** Quiet reconnects while the server may still hold our previous connection's nickname. */
export const GHOST_RETRIES_MAX = 4;
export const RENAME_COOLDOWN_MS = 1500;
/** A `history` request unanswered this long is given up, so a lost reply cannot stop paging. */
export const HISTORY_TIMEOUT_MS = 10000;
/** The wait after a `history` refused for rate (such requests are metered like joins). */
export const HISTORY_RETRY_MS = 3000;

const RECONNECT_TIMER = 'reconnect';
const RENAME_TIMER = 'rename-cooldown';
const TYPING_TIMER = 'typing:'; // + nick
const HISTORY_TIMEOUT_TIMER = 'history-timeout';
const HISTORY_RETRY_TIMER = 'history-retry';

/** A cluster's answer to a join or rename it could not confirm the nickname for (`unavailable`). */
export const NAME_UNCONFIRMED = 'The server cannot confirm the nickname right now, so nothing changed.';
const NOT_CONNECTED = 'You are not connected right now. Your message was not sent; it is still in the box.';
/** Said once per conversation, at its room's first `presence` frame: why joins and leaves stop
 *  showing up in the log. */
export const BUSY_ROOM_NOTICE =
  'This room is busy, so joins and leaves are no longer shown here. The Online list stays up to date.';

/** The longest reconnect delay after `attempt` failed tries in a row. */
export function backoffCeiling(attempt) {
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 16));
}

/** Exponential backoff with full jitter: `random` in [0, 1) spreads the delay over
 *  [0, ceiling), so tabs that lost the same server do not all come back at the same moment. */
export function backoffDelay(attempt, random) {
  return random * backoffCeiling(attempt);
}

/** A small seeded generator (mulberry32): values in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The room named by a location hash such as "#rust" or "#/rust"; the default room for none. */
export function roomFromHash(hash, defaultRoom) {
  let raw = String(hash || '').replace(/^#\/?/, '');
  try { raw = decodeURIComponent(raw); } catch (_) { /* keep it undecoded */ }
  raw = raw.trim();
  return raw || defaultRoom;
}

export class Session {
  /**
   * limits: from config.js's readConfig. wsBase: "ws://host:port" of the page's server.
   * hash: the page's location.hash. online: navigator.onLine. seed: any integer, for the jitter.
   */
  constructor({ limits, wsBase, hash, online = true, seed }) {
    this.limits = limits;
    this.wsBase = wsBase;
    this.random = seededRandom(seed);
    this.phase = 'idle'; // idle | connecting | connected | reconnecting | offline | need-nick
    this.screen = 'login'; // login | chat: which of the two the page shows
    this.online = online;
    this.conn = 0; // id of the current socket; 0 for none
    this.connCount = 0;
    this.socketOpen = false;
    this.nick = null; // the nickname the server confirmed
    this.wantedNick = null; // the nickname we ask for
    this.room = roomFromHash(hash, limits.defaultRoom); // the room we want to be in
    this.shownRoom = null; // the room whose conversation the log shows
    this.inRoom = false;
    this.epoch = null; // epoch of shownRoom's seq numbers
    this.lastSeq = null; // last seq seen in shownRoom
    this.scrollback = new Scrollback(); // what the log holds, and paging back in it
    this.nearTop = false; // the top of the log is in view, as the page last said
    this.historyShown = ''; // the scrollback state last rendered
    this.roster = new Roster(); // who is in shownRoom
    this.busyNoticed = false; // the log shows BUSY_ROOM_NOTICE
    this.typers = new Set(); // nicks shown as typing, each with a timer
    this.attempt = 0; // failed connects in a row, for the backoff
    this.ghostRetries = 0;
    this.reconnectAt = 0;
    this.pendingJoin = null; // {kind: 'connect'|'join', resume, room, auto}
    this.pendingRename = null; // the nick asked for with {"type":"nick"}
    this.disconnected = false; // lost the connection since the last welcome
    this.typingSentAt = 0;
    this.lastSentText = '';
    this.out = [];
  }

  /** Handles one event and returns the effects it calls for, in order. */
  handle(event) {
    this.out = [];
    this.now = event.now ?? 0;
    const socketEvent = event.type === 'open' || event.type === 'frame' || event.type === 'close' ||
      event.type === 'connectFailed';
    // A socket that was replaced or given up may still report; only the current one counts.
    if (socketEvent && event.conn !== this.conn) return [];
    switch (event.type) {
      case 'start': this.onStart(event.storedNick); break;
      case 'open': this.socketOpen = true; break;
      case 'frame': this.onFrame(event.data); break;
      case 'close': this.onClose(event.code); break;
      case 'connectFailed': this.conn = 0; this.scheduleReconnect(); break;
      case 'timer': this.onTimer(event.name); break;
      case 'online': this.online = true; this.reconnectNow(); break;
      case 'offline': this.onOffline(); break;
      case 'retry': this.reconnectNow(); break;
      case 'submitNick': this.onSubmitNick(event.nick); break;
      case 'cancelLogin': this.onCancelLogin(); break;
      case 'rename': this.showLogin('', { rename: true, cancelable: true, nick: this.nick || '' }); break;
      case 'submitMessage': this.onSubmitMessage(event.text); break;
      case 'typed': this.onTyped(event.text); break;
      case 'submitRoom': this.onSubmitRoom(event.room); break;
      case 'hashchange': this.onHashChange(event.hash); break;
      case 'moreUsers': this.askWho(() => this.roster.requestMore()); break;
      case 'refreshUsers': this.askWho(() => this.roster.requestRefresh()); break;
      case 'logTop': this.nearTop = !!event.near; this.loadOlder(); break;
      default: throw new Error(`session: unknown event ${JSON.stringify(event.type)}`);
    }
    return this.out;
  }

  // ------------------------------------------------------------ effects

  emit(effect) {
    this.out.push(effect);
  }

  render(view, fields = {}) {
    this.emit({ type: 'render', view, ...fields });
  }

  send(frame) {
    if (!this.socketOpen) return false;
    this.emit({ type: 'send', frame });
    return true;
  }

  setPhase(phase) {
    this.phase = phase;
    this.render('status', { phase, reconnectAt: this.reconnectAt });
    this.render('composer', { ready: phase === 'connected' && this.inRoom, room: this.shownRoom });
  }

  showRoomName(room, force = false) {
    this.render('roomName', { room, force });
  }

  showLogin(error, { rename = false, cancelable = false, nick = null, select = true } = {}) {
    this.screen = 'login';
    this.render('login', { error, rename, cancelable, nick, select });
  }

  showChat() {
    this.screen = 'chat';
    this.render('chat');
    // The log was hidden, or its contents changed: is its top in view now?
    this.emit({ type: 'measureLog' });
  }

  notice(text, kind = 'info') {
    this.scrollback.notice();
    this.render('notice', { text, kind });
    this.trimLog();
  }

  /** The member list's changes since it was last drawn (single rows, never the whole list). */
  renderRoster() {
    this.render('roster', this.roster.take());
  }

  storeNick(nick) {
    this.emit({ type: 'storeNick', nick });
  }

  // ------------------------------------------------------------ the log

  clearLog() {
    this.scrollback.reset();
    this.stopHistoryTimers();
    this.busyNoticed = false;
    this.render('clearLog');
    this.renderHistory();
  }

  /** What view.js draws for a message; `key` ("epoch:seq", '' without a seq) finds its row. */
  messageFields(m, key) {
    const nick = String(m.nick ?? '');
    return {
      nick,
      text: String(m.text ?? ''),
      ts: m.ts,
      seq: typeof m.seq === 'number' ? m.seq : null,
      key,
      mine: this.nick != null && nick === this.nick,
    };
  }

  /** Shows a message at the bottom unless the log already has it: history after a reconnect
   *  repeats what was seen before the drop, and only `epoch:seq` tells them apart. */
  addMessage(m) {
    const key = this.scrollback.append(m);
    if (key == null) return;
    if (key && (this.lastSeq == null || m.seq > this.lastSeq)) this.lastSeq = m.seq;
    this.render('message', this.messageFields(m, key));
    this.trimLog();
  }

  /** Keeps the log within its bound: the oldest items go (then paging back can bring them). */
  trimLog() {
    const count = this.scrollback.trim();
    if (!count) return;
    this.render('dropOldest', { count });
    this.renderHistory();
  }

  // ------------------------------------------------------------ scrollback

  /** The loading indicator and the beginning-of-the-conversation marker, when they change. */
  renderHistory() {
    const state = this.scrollback.state();
    const shown = JSON.stringify(state);
    if (shown === this.historyShown) return;
    this.historyShown = shown;
    this.render('historyState', state);
  }

  stopHistoryTimers() {
    this.emit({ type: 'cancel', name: HISTORY_TIMEOUT_TIMER });
    this.emit({ type: 'cancel', name: HISTORY_RETRY_TIMER });
    this.scrollback.cooled();
  }

  /** Asks for the page before the top of the log if the person is looking at the top, and one
   *  can be asked for now (scrollback.js decides: one at a time, none past the beginning). */
  loadOlder() {
    if (!this.nearTop || this.phase !== 'connected' || !this.inRoom || this.pendingJoin) return;
    if (!this.socketOpen || this.screen !== 'chat') return;
    const frame = this.scrollback.begin(this.shownRoom, this.lastSeq);
    if (frame) {
      this.send(frame);
      this.emit({ type: 'schedule', name: HISTORY_TIMEOUT_TIMER, ms: HISTORY_TIMEOUT_MS });
    }
    this.renderHistory();
  }

  onHistory(h) {
    const page = this.scrollback.reply(h);
    if (!page) return;
    this.emit({ type: 'cancel', name: HISTORY_TIMEOUT_TIMER });
    if (page.messages.length) {
      const messages = page.messages.map((m) => this.messageFields(m, `${this.epoch}:${m.seq}`));
      this.render('olderMessages', { messages, anchor: page.anchor });
    }
    this.renderHistory();
    // Still at the top after a short page? The answer asks for the next one.
    this.emit({ type: 'measureLog' });
  }

  // ------------------------------------------------------------ typing

  renderTyping() {
    this.render('typing', { names: [...this.typers] });
  }

  someoneTyping(nick) {
    if (!nick || nick === this.nick) return;
    this.typers.add(nick);
    this.emit({ type: 'schedule', name: TYPING_TIMER + nick, ms: TYPING_SHOW_MS });
    this.renderTyping();
  }

  stoppedTyping(nick) {
    if (!this.typers.has(nick)) return;
    this.emit({ type: 'cancel', name: TYPING_TIMER + nick });
    this.typers.delete(nick);
    this.renderTyping();
  }

  clearTypers() {
    for (const nick of this.typers) this.emit({ type: 'cancel', name: TYPING_TIMER + nick });
    this.typers.clear();
    this.renderTyping();
  }

  // ------------------------------------------------------------ connection

  /** Resume with since/epoch only when the log already shows this room. */
  resumePoint(room) {
    if (this.shownRoom === room && this.epoch != null && this.lastSeq != null) {
      return { since: this.lastSeq, epoch: this.epoch };
    }
    return null;
  }

  connect() {
    this.clearReconnectTimer();
    const resume = this.resumePoint(this.room);
    const query = connectQuery({ room: this.room, nick: this.wantedNick, resume });
    this.pendingJoin = { kind: 'connect', resume: !!resume, room: this.room, auto: this.disconnected };
    this.inRoom = false;
    this.socketOpen = false;
    this.connCount += 1;
    this.conn = this.connCount;
    this.setPhase('connecting');
    this.emit({ type: 'connect', conn: this.conn, url: `${this.wsBase}/ws?${query}` });
  }

  /** Drops the current socket without waiting for its close event. */
  dropSocket() {
    if (this.conn) this.emit({ type: 'disconnect' });
    this.conn = 0;
    this.socketOpen = false;
  }

  onClose(code) {
    this.conn = 0;
    this.socketOpen = false;
    this.inRoom = false;
    this.pendingRename = null;
    this.typingSentAt = 0;
    this.clearTypers();
    this.roster.abandonRequest();
    this.renderRoster();
    this.scrollback.connectionLost();
    this.stopHistoryTimers();
    this.renderHistory();
    if (this.phase === 'need-nick') {
      // Waiting for the person to pick another nickname: reconnect when they do.
      this.pendingJoin = null;
      return;
    }
    if (this.shownRoom && !this.disconnected) {
      this.notice(`${describeClose(code)} Reconnecting...`, 'warn');
    }
    if (!this.shownRoom && this.screen === 'login') {
      this.render('loginError', { text: 'Could not reach the chat server. Trying again...' });
    }
    this.disconnected = true;
    this.scheduleReconnect();
  }

  clearReconnectTimer() {
    this.emit({ type: 'cancel', name: RECONNECT_TIMER });
  }

  scheduleReconnect() {
    this.clearReconnectTimer();
    if (!this.online) {
      this.setPhase('offline');
      return;
    }
    const delay = backoffDelay(this.attempt, this.random());
    this.attempt += 1;
    this.reconnectAt = this.now + delay;
    this.emit({ type: 'schedule', name: RECONNECT_TIMER, ms: delay });
    this.setPhase('reconnecting');
  }

  reconnectNow() {
    if (this.phase === 'reconnecting' || this.phase === 'offline') this.connect();
  }

  onOffline() {
    this.online = false;
    if (this.phase === 'reconnecting') {
      this.clearReconnectTimer();
      this.setPhase('offline');
    }
  }

  onTimer(name) {
    if (name === RECONNECT_TIMER) {
      this.connect();
    } else if (name === RENAME_TIMER) {
      this.render('loginBusy', { busy: false });
    } else if (name.startsWith(TYPING_TIMER)) {
      if (this.typers.delete(name.slice(TYPING_TIMER.length))) this.renderTyping();
    } else if (name === HISTORY_TIMEOUT_TIMER) {
      this.scrollback.abandon();
      this.renderHistory();
      this.emit({ type: 'measureLog' });
    } else if (name === HISTORY_RETRY_TIMER) {
      this.scrollback.cooled();
      this.emit({ type: 'measureLog' });
    }
  }

  // ------------------------------------------------------------ server frames

  onFrame(data) {
    const msg = parseServerFrame(data);
    if (!msg) return;
    const forShownRoom = !msg.room || msg.room === this.shownRoom;
    switch (msg.type) {
      case 'welcome':
        this.onWelcome(msg);
        break;
      case 'message':
        if (!forShownRoom) return;
        this.stoppedTyping(msg.nick);
        this.addMessage(msg);
        if (msg.nick === this.nick) {
          this.render('clearChatError');
          this.lastSentText = '';
        }
        break;
      case 'join':
        if (!forShownRoom || typeof msg.nick !== 'string' || !msg.nick) return;
        this.roster.join(msg.nick);
        this.renderRoster();
        this.notice(`${msg.nick} joined`);
        break;
      case 'leave':
        if (!forShownRoom || typeof msg.nick !== 'string' || !msg.nick) return;
        this.roster.leave(msg.nick);
        this.stoppedTyping(msg.nick);
        this.renderRoster();
        this.notice(leaveText(msg));
        break;
      case 'presence':
        if (forShownRoom && this.inRoom) this.onPresence(msg);
        break;
      case 'users':
        if (forShownRoom && this.inRoom) this.onUsers(msg);
        break;
      case 'nick':
        if (forShownRoom) this.onNick(msg);
        break;
      case 'typing':
        if (forShownRoom) this.someoneTyping(msg.nick);
        break;
      case 'history':
        this.onHistory(msg);
        break;
      case 'error':
        this.onServerError(msg);
        break;
      default:
        break;
    }
  }

  /** A large room's coalesced changes: the list and count change, the log stays calm (one
   *  line per conversation saying why, never one per name). */
  onPresence(p) {
    const { gone } = this.roster.presence(p);
    for (const nick of gone) this.stoppedTyping(nick);
    this.renderRoster();
    if (!this.busyNoticed) {
      this.busyNoticed = true;
      this.notice(BUSY_ROOM_NOTICE);
    }
  }

  /** A page of members, the answer to our `who` (a refresh may need the next one). */
  onUsers(page) {
    const next = this.roster.page(page);
    if (next && !this.send(whoFrame(next.after))) this.roster.abandonRequest();
    this.renderRoster();
  }

  /** "and N more" or "Refresh": `ask` gets the `who` to send from the roster, if any. */
  askWho(ask) {
    if (!this.inRoom || !this.socketOpen || this.phase !== 'connected') return;
    const request = ask();
    if (!request) return;
    this.send(whoFrame(request.after));
    this.renderRoster();
  }

  onWelcome(w) {
    const pending = this.pendingJoin;
    const resumed = !!(pending && pending.resume) && this.shownRoom === w.room;
    const epochChanged = this.epoch != null && w.epoch !== this.epoch;
    if (this.shownRoom !== w.room) {
      this.clearLog();
      this.shownRoom = w.room;
      this.epoch = null;
      this.lastSeq = null;
    }
    this.nick = w.nick;
    this.wantedNick = w.nick;
    this.room = w.room;
    this.inRoom = true;
    this.pendingJoin = null;
    this.pendingRename = null;
    this.attempt = 0;
    this.ghostRetries = 0;
    this.storeNick(w.nick);

    if (resumed && w.recovered === false) {
      this.notice(epochChanged
        ? 'Reconnected, but some earlier messages could not be recovered (the server restarted).'
        : 'Reconnected, but some earlier messages could not be recovered (too much was missed).', 'warn');
    } else if (this.disconnected && resumed) {
      this.notice('Reconnected.');
    }
    this.disconnected = false;

    // Another epoch numbers its messages afresh: the old lastSeq means nothing there.
    if (epochChanged) this.lastSeq = null;
    this.epoch = w.epoch;
    this.scrollback.setEpoch(w.epoch);
    for (const m of Array.isArray(w.history) ? w.history : []) this.addMessage(m);
    if (typeof w.seq === 'number') this.lastSeq = w.seq;
    this.scrollback.welcomed(this.lastSeq);
    this.renderHistory();

    this.roster.reset({ users: w.users, count: w.user_count, me: w.nick });
    this.clearTypers();
    this.renderRoster();
    this.render('me', { nick: w.nick });
    this.showRoomName(w.room, true);
    this.emit({ type: 'replaceHash', room: w.room });
    this.render('clearChatError');
    this.setPhase('connected');
    this.showChat();
  }

  onNick(ev) {
    if (typeof ev.old !== 'string' || typeof ev.nick !== 'string' || !ev.old || !ev.nick) return;
    this.roster.rename(ev.old, ev.nick);
    this.stoppedTyping(ev.old);
    if (ev.old === this.nick) {
      this.nick = ev.nick;
      this.wantedNick = ev.nick;
      this.pendingRename = null;
      this.storeNick(ev.nick);
      this.render('me', { nick: ev.nick });
      this.notice(`You are now known as ${ev.nick}`);
      if (this.screen === 'login') this.showChat();
    } else {
      this.notice(`${ev.old} is now known as ${ev.nick}`);
    }
    this.renderRoster();
  }

  onServerError(err) {
    const code = err.code;
    const text = describeError(err, this.limits);
    const nickProblem = code === 'nick_taken' || code === 'invalid_nick';

    // An error frame does not say which request it answers. While a `history` is in flight, an
    // unknown type can only be that one (an older server), and `rate_limited` is that one unless
    // a message is waiting for its echo too; either is settled quietly, as the person asked for
    // nothing. A rate_limited that may be the message's is shown as always, and the request
    // waits for its reply or its timeout.
    const historyVerdict = code === 'rate_limited' && this.lastSentText ? null : this.scrollback.refused(code);
    if (historyVerdict) {
      this.emit({ type: 'cancel', name: HISTORY_TIMEOUT_TIMER });
      if (historyVerdict === 'cooling') this.emit({ type: 'schedule', name: HISTORY_RETRY_TIMER, ms: HISTORY_RETRY_MS });
      this.renderHistory();
      return;
    }

    if (this.pendingJoin) {
      const pending = this.pendingJoin;
      if (code === 'nick_taken' && pending.auto && this.ghostRetries < GHOST_RETRIES_MAX) {
        // After a network loss the server may still hold our old connection for a while:
        // keep retrying quietly before asking for another name.
        this.ghostRetries += 1;
        this.pendingJoin = null;
        this.dropSocket();
        this.scheduleReconnect();
        return;
      }
      if (nickProblem) {
        this.pendingJoin = null;
        if (pending.kind === 'connect') this.inRoom = false;
        // Back to the nickname form; the connection stays open for a join with another name.
        this.setPhase(this.inRoom ? 'connected' : 'need-nick');
        this.attempt = 0;
        this.showLogin(text, { nick: this.wantedNick, cancelable: this.inRoom });
        return;
      }
      if (code === 'unavailable') {
        // A cluster could not confirm the nickname across its servers (its Redis is away), and
        // nothing changed. A switch leaves us where we are; a first join or a rejoin after a
        // drop tries again by itself, with the reconnect backoff.
        this.pendingJoin = null;
        if (this.inRoom) {
          this.render('chatError', { text: NAME_UNCONFIRMED });
          return;
        }
        this.dropSocket();
        if (this.shownRoom && !this.disconnected) this.notice(`${NAME_UNCONFIRMED} Trying again...`, 'warn');
        if (!this.shownRoom && this.screen === 'login') {
          this.render('loginError', { text: `${NAME_UNCONFIRMED} Trying again...` });
        }
        this.disconnected = true;
        this.scheduleReconnect();
        return;
      }
      if (code === 'invalid_room' || code === 'too_many_rooms') {
        this.pendingJoin = null;
        if (this.inRoom && this.shownRoom) {
          // A switch failed: stay where we are.
          this.room = this.shownRoom;
          this.emit({ type: 'replaceHash', room: this.room });
          this.showRoomName(this.room);
          this.render('chatError', { text });
        } else {
          const fallback = this.limits.defaultRoom;
          this.room = fallback;
          this.emit({ type: 'replaceHash', room: fallback });
          this.showRoomName(fallback);
          this.setPhase('need-nick');
          this.showLogin(`${text} You will join #${fallback} instead.`, { nick: this.wantedNick });
        }
        return;
      }
    }

    if (this.pendingRename && nickProblem) {
      this.pendingRename = null;
      this.showLogin(text, { rename: true, cancelable: true });
      return;
    }
    if (this.pendingRename && code === 'unavailable') {
      this.pendingRename = null;
      this.render('chatError', { text: NAME_UNCONFIRMED });
      return;
    }

    if ((code === 'rate_limited' || code === 'message_too_long' || code === 'invalid_text') && this.lastSentText) {
      // Give the text back (if the box is still empty) so nothing typed is lost.
      this.render('restoreMessage', { text: this.lastSentText });
    }
    this.lastSentText = '';
    if (code === 'not_in_room') this.inRoom = false;
    this.render('chatError', { text });
  }

  // ------------------------------------------------------------ joining

  /** Joins (or rejoins) this.room as this.wantedNick, over the open socket when there is one. */
  join() {
    if (this.socketOpen) {
      const resume = this.resumePoint(this.room);
      this.pendingJoin = { kind: 'join', resume: !!resume, room: this.room };
      this.send(joinFrame({ room: this.room, nick: this.wantedNick, resume }));
      // The server's current room is about to change; the reply to a request is of no use.
      this.scrollback.abandon();
      this.emit({ type: 'cancel', name: HISTORY_TIMEOUT_TIMER });
      this.renderHistory();
      if (!this.inRoom) this.setPhase('connecting');
    } else {
      this.attempt = 0;
      this.connect();
    }
  }

  switchRoom(room) {
    this.room = room;
    this.showRoomName(room);
    this.render('clearChatError');
    if (!this.wantedNick) return; // still on the nickname form
    if (this.phase === 'need-nick' && !this.inRoom) return;
    this.join();
  }

  // ------------------------------------------------------------ what the person does

  onStart(storedNick) {
    this.render('limits', { limits: this.limits });
    this.showRoomName(this.room);
    this.setPhase('idle');
    this.showLogin('', { select: false });
    // Offered, not selected, so Enter joins with it.
    if (storedNick) this.render('offerNick', { nick: storedNick });
  }

  onSubmitNick(raw) {
    const nick = String(raw).trim();
    const problem = checkNick(nick, this.limits);
    if (problem) {
      this.render('loginError', { text: problem, focus: true });
      return;
    }
    this.render('loginError', { text: '' });
    this.storeNick(nick);
    const renaming = this.inRoom && this.socketOpen && this.phase === 'connected';
    if (renaming) {
      if (nick === this.nick) {
        this.showChat();
        return;
      }
      this.pendingRename = nick;
      this.send(nickFrame(nick));
      this.render('loginBusy', { busy: true });
      this.emit({ type: 'schedule', name: RENAME_TIMER, ms: RENAME_COOLDOWN_MS });
      return;
    }
    this.wantedNick = nick;
    this.join();
  }

  onCancelLogin() {
    if (!this.inRoom) return;
    this.pendingRename = null;
    this.room = this.shownRoom;
    this.showRoomName(this.room);
    this.showChat();
  }

  onSubmitMessage(text) {
    if (!text.trim()) return;
    if (utf8Bytes(text.trim()) > this.limits.textBytesMax) {
      this.render('chatError', { text: ERROR_TEXTS.message_too_long(this.limits) });
      return;
    }
    if (this.phase !== 'connected' || !this.inRoom || !this.send(messageFrame(text))) {
      this.render('chatError', { text: NOT_CONNECTED });
      return;
    }
    this.lastSentText = text;
    this.typingSentAt = 0;
    this.render('messageSent');
  }

  onTyped(text) {
    if (!text.trim() || this.phase !== 'connected' || !this.inRoom) return;
    if (this.now - this.typingSentAt >= TYPING_SEND_EVERY_MS) {
      this.typingSentAt = this.now;
      this.send(typingFrame());
    }
  }

  onSubmitRoom(raw) {
    const room = String(raw).trim().replace(/^#/, '');
    const problem = checkRoom(room, this.limits);
    if (problem) {
      this.render('chatError', { text: problem });
      return;
    }
    this.render('roomInputDone', { room: room === this.shownRoom && this.inRoom ? room : null });
    if (room === this.shownRoom && this.inRoom) return;
    this.emit({ type: 'navigate', room }); // the hashchange that follows does the switch
  }

  onHashChange(hash) {
    const room = roomFromHash(hash, this.limits.defaultRoom);
    if (room === this.room && (this.inRoom || this.pendingJoin)) return;
    const problem = checkRoom(room, this.limits);
    if (problem) {
      this.render('chatError', { text: problem });
      this.emit({ type: 'replaceHash', room: this.room });
      return;
    }
    this.switchRoom(room);
  }
}
