// The session state machine: reconnect backoff, `since` bookkeeping, exactly-once display.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  BACKOFF_BASE_MS, BACKOFF_CAP_MS, backoffCeiling, backoffDelay, GHOST_RETRIES_MAX, NAME_UNCONFIRMED,
  roomFromHash,
} from '../../static/session.js';
import { Harness, message } from './harness.mjs';

const NICK_TAKEN = 'That nickname is already taken in this room. Please pick another.';

// ------------------------------------------------------------------ backoff

test('the backoff ceiling doubles from 500 ms up to the 20 s cap and stays there', () => {
  assert.equal(BACKOFF_BASE_MS, 500);
  assert.equal(BACKOFF_CAP_MS, 20000);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map(backoffCeiling),
    [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]);
  for (const attempt of [30, 1000, Number.MAX_SAFE_INTEGER]) assert.equal(backoffCeiling(attempt), 20000);
  for (const attempt of [0, 3, 9]) {
    assert.equal(backoffDelay(attempt, 0), 0);
    assert.ok(backoffDelay(attempt, 0.999999) < backoffCeiling(attempt));
    assert.equal(backoffDelay(attempt, 0.5), backoffCeiling(attempt) / 2);
  }
});

/** Signs in, then loses the connection `n` times in a row; returns each reconnect's delay. */
function failedReconnects(h, n) {
  const delays = [];
  h.close(1001);
  for (let i = 0; i < n; i++) {
    assert.equal(h.phase, 'reconnecting');
    delays.push(h.fireReconnect());
    assert.equal(h.phase, 'connecting');
    h.close(1006); // refused: no welcome, so no reset
  }
  return delays;
}

test('reconnect delays stay under the growing ceiling and the cap, with jitter', () => {
  const all = [];
  for (let seed = 1; seed <= 20; seed++) {
    const h = new Harness({ seed });
    h.signIn();
    const delays = failedReconnects(h, 12);
    delays.forEach((delay, attempt) => {
      assert.ok(delay >= 0 && delay < backoffCeiling(attempt), `seed ${seed}, attempt ${attempt}: ${delay}`);
    });
    all.push(delays);
  }
  // Full jitter: tabs that lost the same server do not come back together.
  const firstDelays = new Set(all.map((delays) => delays[0]));
  assert.ok(firstDelays.size > 15, `first delays spread out: ${[...firstDelays]}`);
  // Late attempts use the capped range: some delays go past the last uncapped ceiling (16 s).
  assert.ok(all.some((delays) => delays.slice(6).some((d) => d > 16000)), 'some capped delay over 16 s');
  assert.ok(all.flat().every((d) => d < BACKOFF_CAP_MS));
});

test('the same seed gives the same delays (the jitter comes from the seed, not Math.random)', () => {
  const run = (seed) => {
    const h = new Harness({ seed });
    h.signIn();
    return failedReconnects(h, 5);
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
});

test('a welcome resets the backoff; the status counts down to the scheduled reconnect', () => {
  const h = new Harness({ seed: 3 });
  h.signIn();
  failedReconnects(h, 8);
  h.fireReconnect();
  h.open();
  h.welcome();
  assert.equal(h.phase, 'connected');
  h.close(4001);
  const status = h.renders.filter((r) => r.view === 'status').pop();
  assert.equal(status.phase, 'reconnecting');
  const delay = h.timers.get('reconnect').ms;
  assert.ok(delay < BACKOFF_BASE_MS, `first delay after a welcome is under 500 ms: ${delay}`);
  assert.equal(status.reconnectAt, h.now + delay);
});

test('offline, no reconnect is scheduled; back online, it connects at once', () => {
  const h = new Harness();
  h.signIn();
  h.handle({ type: 'offline' });
  h.close(1006);
  assert.equal(h.phase, 'offline');
  assert.equal(h.timers.has('reconnect'), false);
  const before = h.connects.length;
  h.handle({ type: 'online' });
  assert.equal(h.connects.length, before + 1);
  assert.equal(h.phase, 'connecting');
});

// ------------------------------------------------------------------ since / epoch

test('the first connect carries nick and room but no since', () => {
  const h = new Harness({ hash: '#rust' });
  h.handle({ type: 'submitNick', nick: '  ann  ' });
  assert.equal(h.connects.length, 1);
  const url = h.lastUrl;
  assert.equal(url.origin + url.pathname, 'ws://chat.test/ws');
  assert.equal(url.searchParams.get('nick'), 'ann');
  assert.equal(url.searchParams.get('room'), 'rust');
  assert.equal(url.searchParams.has('since'), false);
  assert.equal(url.searchParams.has('epoch'), false);
});

test('a reconnect asks for everything after the last seq seen, in that epoch', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 41, epoch: 'e1', history: [message(40, 'old'), message(41, 'older?')] });
  assert.equal(h.session.lastSeq, 41, 'the room\'s seq from the welcome');
  h.frame(message(42, 'a'));
  h.frame(message(43, 'b'));
  h.close(4001);
  h.fireReconnect();
  assert.equal(h.lastUrl.searchParams.get('since'), '43');
  assert.equal(h.lastUrl.searchParams.get('epoch'), 'e1');
  assert.equal(h.lastUrl.searchParams.get('nick'), 'ann');
});

test('the welcome\'s seq counts even when the history is empty', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 41, epoch: 'e1', history: [] });
  h.close();
  h.fireReconnect();
  assert.equal(h.lastUrl.searchParams.get('since'), '41');
});

test('after a server restart the new epoch\'s numbers are the ones resumed from', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 9, epoch: 'e1' });
  h.close(1001);
  h.fireReconnect();
  h.open();
  h.welcome({ seq: 0, epoch: 'e2', recovered: false });
  h.frame(message(1, 'first of e2'));
  h.close(1001);
  h.fireReconnect();
  assert.equal(h.lastUrl.searchParams.get('since'), '1');
  assert.equal(h.lastUrl.searchParams.get('epoch'), 'e2');
});

test('switching rooms drops the resume point: since belongs to the room on screen', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 5, epoch: 'e1' });
  h.handle({ type: 'hashchange', hash: '#rust' });
  assert.deepEqual(h.sent.pop(), { type: 'join', room: 'rust', nick: 'ann' });
  h.welcome({ room: 'rust', seq: 2, epoch: 'e1' });
  h.handle({ type: 'hashchange', hash: '#lobby' });
  assert.deepEqual(h.sent.pop(), { type: 'join', room: 'lobby', nick: 'ann' }, 'no since of rust for lobby');
  h.welcome({ room: 'lobby', seq: 5, epoch: 'e1' });
  h.close();
  h.fireReconnect();
  assert.equal(h.lastUrl.searchParams.get('room'), 'lobby');
  assert.equal(h.lastUrl.searchParams.get('since'), '5');
});

test('roomFromHash reads #room and #/room, decoded, with the default for none', () => {
  assert.equal(roomFromHash('#rust', 'lobby'), 'rust');
  assert.equal(roomFromHash('#/rust', 'lobby'), 'rust');
  assert.equal(roomFromHash('#caf%C3%A9', 'lobby'), 'café');
  assert.equal(roomFromHash('#%E0%A4%A', 'lobby'), '%E0%A4%A', 'a bad escape is kept as typed');
  assert.equal(roomFromHash('', 'lobby'), 'lobby');
  assert.equal(roomFromHash('#  ', 'lobby'), 'lobby');
});

// ------------------------------------------------------------------ exactly once

test('a reconnect that recovers the gap shows every message exactly once', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 0, epoch: 'e1' });
  for (const seq of [1, 2, 3]) h.frame(message(seq, `m${seq}`));
  h.close(4003);
  assert.match(h.notices.pop(), /disconnected by an operator\. Reconnecting\.\.\.$/);
  h.fireReconnect();
  h.open();
  // The server's history is what came after since=3; a live copy of 5 may arrive as well.
  h.welcome({ seq: 5, epoch: 'e1', recovered: true, history: [message(4, 'm4'), message(5, 'm5')] });
  h.frame(message(5, 'm5'));
  h.frame(message(6, 'm6'));
  assert.deepEqual(h.shown, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
  assert.equal(h.notices.pop(), 'Reconnected.');
});

test('a history that overlaps what was seen (gap too big) adds only the new messages', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 0, epoch: 'e1' });
  for (const seq of [1, 2, 3]) h.frame(message(seq, `m${seq}`));
  h.close(4001);
  h.fireReconnect();
  h.open();
  const history = [2, 3, 4, 5].map((seq) => message(seq, `m${seq}`));
  h.welcome({ seq: 5, epoch: 'e1', recovered: false, history });
  assert.deepEqual(h.shown, ['m1', 'm2', 'm3', 'm4', 'm5']);
  assert.equal(h.notices.pop(),
    'Reconnected, but some earlier messages could not be recovered (too much was missed).');
});

test('after a server restart the old log stays and the new epoch\'s seq 1 is a new message', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 0, epoch: 'e1' });
  h.frame(message(1, 'before'));
  h.close(1001);
  assert.equal(h.notices.pop(), 'The server is restarting. Reconnecting...');
  h.fireReconnect();
  h.open();
  h.welcome({ seq: 1, epoch: 'e2', recovered: false, history: [message(1, 'after')] });
  assert.deepEqual(h.shown, ['before', 'after']);
  assert.equal(h.notices.pop(),
    'Reconnected, but some earlier messages could not be recovered (the server restarted).');
});

test('a socket that was replaced cannot add to the log', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 0, epoch: 'e1' });
  const old = h.conn;
  h.close();
  h.fireReconnect();
  assert.notEqual(h.conn, old);
  assert.deepEqual(h.handle({ type: 'frame', conn: old, data: JSON.stringify(message(1, 'ghost')) }), []);
  assert.deepEqual(h.handle({ type: 'close', conn: old, code: 1006 }), []);
  assert.deepEqual(h.shown, []);
});

test('rejoining the room on screen keeps its log; another room starts a fresh one', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 0, epoch: 'e1' });
  h.frame(message(1, 'lobby talk'));
  h.handle({ type: 'hashchange', hash: '#rust' });
  h.welcome({ room: 'rust', seq: 1, epoch: 'e1', history: [message(1, 'rust talk', { room: 'rust' })] });
  assert.deepEqual(h.shown, ['rust talk']);
  h.frame(message(2, 'lobby, unseen'));
  assert.deepEqual(h.shown, ['rust talk'], 'frames of another room are ignored');
});

// ------------------------------------------------------------------ nicknames

test('a nickname taken on connect brings back the form; another one joins over the same socket', () => {
  const h = new Harness();
  h.handle({ type: 'submitNick', nick: 'ann' });
  h.open();
  h.frame({ type: 'error', code: 'nick_taken', message: 'taken' });
  assert.equal(h.phase, 'need-nick');
  const login = h.renders.filter((r) => r.view === 'login').pop();
  assert.equal(login.error, NICK_TAKEN);
  h.handle({ type: 'submitNick', nick: 'annie' });
  assert.equal(h.connects.length, 1, 'no new socket');
  assert.deepEqual(h.sent.pop(), { type: 'join', room: 'lobby', nick: 'annie' });
});

test('after a drop, nick_taken (our own ghost) is retried quietly a few times first', () => {
  const h = new Harness();
  h.signIn('ann', { seq: 0 });
  h.close(1006);
  for (let i = 0; i < GHOST_RETRIES_MAX; i++) {
    h.fireReconnect();
    h.open();
    h.frame({ type: 'error', code: 'nick_taken' });
    assert.equal(h.phase, 'reconnecting', `retry ${i + 1}`);
    assert.equal(h.conn, 0, 'the refused socket is dropped');
  }
  h.fireReconnect();
  h.open();
  h.frame({ type: 'error', code: 'nick_taken' });
  assert.equal(h.phase, 'need-nick');
  assert.equal(h.renders.filter((r) => r.view === 'login').pop().error, NICK_TAKEN);
});

test('a join a cluster cannot confirm (unavailable) is tried again by itself; a switch stays put', () => {
  const h = new Harness();
  h.handle({ type: 'submitNick', nick: 'ann' });
  h.open();
  h.frame({ type: 'error', code: 'unavailable', message: 'the nickname could not be confirmed' });
  assert.equal(h.phase, 'reconnecting', 'a new attempt is scheduled');
  assert.equal(h.conn, 0, 'the refused socket is dropped');
  const login = h.renders.filter((r) => r.view === 'loginError').pop();
  assert.equal(login.text, `${NAME_UNCONFIRMED} Trying again...`);
  h.fireReconnect();
  h.open();
  h.welcome({ nick: 'ann' });
  assert.equal(h.phase, 'connected');

  // In a room: a switch it cannot confirm leaves the person where they are.
  h.handle({ type: 'hashchange', hash: '#rust' });
  h.frame({ type: 'error', code: 'unavailable' });
  assert.equal(h.phase, 'connected');
  assert.equal(h.renders.filter((r) => r.view === 'chatError').pop().text, NAME_UNCONFIRMED);
  assert.equal(h.connects.length, 2, 'no new socket for it');
});

test('a rename a cluster cannot confirm changes nothing and says why', () => {
  const h = new Harness();
  h.signIn('ann');
  h.handle({ type: 'submitNick', nick: 'anna' });
  assert.deepEqual(h.sent.pop(), { type: 'nick', nick: 'anna' });
  h.frame({ type: 'error', code: 'unavailable' });
  assert.equal(h.renders.filter((r) => r.view === 'chatError').pop().text, NAME_UNCONFIRMED);
  assert.equal(h.session.pendingRename, null);
  assert.equal(h.session.nick, 'ann');
});

test('a message over text_bytes_max is refused before sending, with the configured limit', () => {
  const h = new Harness();
  h.signIn();
  h.handle({ type: 'submitMessage', text: 'é'.repeat(151) }); // 302 bytes
  assert.deepEqual(h.sent, []);
  assert.match(h.renders.pop().text, /the limit is 300 bytes/);
  h.handle({ type: 'submitMessage', text: ` ${'é'.repeat(150)} ` });
  assert.equal(h.sent.pop().type, 'message');
});

test('a message refused as invalid_text is given back to the box, with the reason', () => {
  const h = new Harness();
  h.signIn();
  h.handle({ type: 'submitMessage', text: 'evil \u202etxt.exe' });
  assert.equal(h.sent.pop().type, 'message');
  h.frame({ type: 'error', code: 'invalid_text', message: 'a message may not contain control characters' });
  const restored = h.renders.filter((r) => r.view === 'restoreMessage').pop();
  assert.equal(restored && restored.text, 'evil \u202etxt.exe', 'nothing typed is lost');
  assert.match(h.renders.filter((r) => r.view === 'chatError').pop().text, /control characters/);
});

test('a rename goes over the open socket; the server\'s nick frame confirms it', () => {
  const h = new Harness();
  h.signIn('ann', { users: ['bob'] });
  h.handle({ type: 'rename' });
  assert.equal(h.session.screen, 'login');
  h.handle({ type: 'submitNick', nick: 'annie' });
  assert.deepEqual(h.sent.pop(), { type: 'nick', nick: 'annie' });
  assert.equal(h.renders.filter((r) => r.view === 'loginBusy').pop().busy, true);
  h.advance(2000);
  assert.equal(h.renders.filter((r) => r.view === 'loginBusy').pop().busy, false, 'the button comes back');
  h.frame({ type: 'nick', room: 'lobby', old: 'ann', nick: 'annie' });
  assert.equal(h.session.nick, 'annie');
  assert.equal(h.session.screen, 'chat');
  assert.equal(h.notices.pop(), 'You are now known as annie');
  assert.deepEqual(h.users, ['annie', 'bob']);
  assert.equal(h.connects.length, 1, 'no reconnect for a rename');
});

test('typing: sent at most every 2 s; someone else\'s hint goes after 4 s or with their message', () => {
  const h = new Harness();
  h.signIn('ann');
  h.handle({ type: 'typed', text: 'h' });
  h.advance(1000);
  h.handle({ type: 'typed', text: 'he' });
  assert.equal(h.sent.filter((f) => f.type === 'typing').length, 1);
  h.advance(1000);
  h.handle({ type: 'typed', text: 'hel' });
  assert.equal(h.sent.filter((f) => f.type === 'typing').length, 2);

  const typing = () => h.renders.filter((r) => r.view === 'typing').pop().names;
  h.frame({ type: 'typing', room: 'lobby', nick: 'bob' });
  assert.deepEqual(typing(), ['bob']);
  h.advance(3999);
  assert.deepEqual(typing(), ['bob']);
  h.advance(1);
  assert.deepEqual(typing(), []);
  h.frame({ type: 'typing', room: 'lobby', nick: 'bob' });
  h.frame(message(1, 'done typing'));
  assert.deepEqual(typing(), []);
  assert.equal(h.timers.has('typing:bob'), false);
});
