// Who is online, through the session: the member list and count the page shows in small rooms
// (a notice per join and leave) and large ones (presence frames, paging with `who`, no line per
// name), and what each event costs the list.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { BUSY_ROOM_NOTICE } from '../../static/session.js';
import { Harness } from './harness.mjs';

function presence(fields) {
  return { type: 'presence', room: 'lobby', joined: [], left: [], renamed: [], joined_more: 0, left_more: 0, renamed_more: 0, ...fields };
}

function page(users, userCount, next, room = 'lobby') {
  return { type: 'users', room, users, user_count: userCount, next };
}

/** Signed in to a room of `count` members whose first page is `users`. */
function largeRoom(nick, users, count) {
  const h = new Harness();
  h.signIn(nick, { users, user_count: count });
  return h;
}

const lastOps = (h) => h.rosterOps[h.rosterOps.length - 1];

test('a large room shows its count, the first page and "and N more"; more pages come with who', () => {
  const h = largeRoom('zed', ['a1', 'a2', 'a3'], 19000);
  assert.deepEqual(h.users, ['zed', 'a1', 'a2', 'a3']);
  assert.deepEqual(h.roster, { count: 19000, more: 18996, stale: false, loading: false });

  h.handle({ type: 'moreUsers' });
  assert.deepEqual(h.whos, [{ type: 'who', after: 'a3' }]);
  assert.equal(h.roster.loading, true);
  h.handle({ type: 'moreUsers' });
  assert.equal(h.whos.length, 1, 'one page at a time');

  h.frame(page(['a4', 'a5', 'zed'], 19001, 'zed'));
  assert.deepEqual(h.users, ['zed', 'a1', 'a2', 'a3', 'a4', 'a5'], 'appended, this client once');
  assert.deepEqual(lastOps(h).map((op) => op.op), ['add', 'add'], 'one row per new name');
  assert.deepEqual(h.roster, { count: 19001, more: 18995, stale: false, loading: false });
  h.handle({ type: 'moreUsers' });
  assert.deepEqual(h.whos.at(-1), { type: 'who', after: 'zed' });
});

test('a presence frame of 100 joins adds one calm line to the log, not 100, and 100 single rows', () => {
  const h = largeRoom('ann', ['ann', 'bob', 'cy'], 500);
  const logBefore = h.log.length;
  const joined = Array.from({ length: 100 }, (_, i) => `b${String(i).padStart(3, '0')}`);
  h.frame(presence({ user_count: 599, joined, left: ['bob'], joined_more: 0 }));
  assert.deepEqual(h.log.slice(logBefore), [{ notice: BUSY_ROOM_NOTICE }]);
  const ops = lastOps(h);
  assert.equal(ops.length, 101, 'a remove and 100 adds');
  assert.ok(!ops.some((op) => op.op === 'reset'), 'the list is not rebuilt');
  assert.deepEqual(h.users, ['ann', ...joined, 'cy']);
  assert.equal(h.roster.count, 599);

  h.frame(presence({ user_count: 598, left: ['b000', 'b001'], joined: ['zz'] }));
  assert.equal(h.log.length, logBefore + 1, 'the notice is said once');
  assert.deepEqual(lastOps(h), [{ op: 'remove', key: 'b000' }, { op: 'remove', key: 'b001' }], 'zz sorts past the list: counted only');
  assert.deepEqual(h.roster, { count: 598, more: 598 - 100, stale: false, loading: false });

  // A fresh conversation (another room) explains itself again.
  h.handle({ type: 'hashchange', hash: '#rust' });
  h.welcome({ nick: 'ann', room: 'rust', users: ['ann', 'x'], user_count: 400 });
  h.frame(presence({ room: 'rust', user_count: 401, joined: ['b'] }));
  assert.deepEqual(h.notices, [BUSY_ROOM_NOTICE]);
  assert.deepEqual(h.users, ['ann', 'b', 'x']);
});

test('a small room still announces joins, leaves and renames one by one, and the count follows', () => {
  const h = new Harness();
  h.signIn('ann', { users: ['bob'] });
  assert.deepEqual(h.roster, { count: 2, more: 0, stale: false, loading: false });
  h.frame({ type: 'join', room: 'lobby', nick: 'carl', ts: '2026-11-22T03:04:07.000Z' });
  assert.deepEqual(h.users, ['ann', 'bob', 'carl']);
  assert.deepEqual(lastOps(h), [{ op: 'add', key: 'carl', nick: 'carl', me: false, before: null }]);
  assert.equal(h.roster.count, 3);
  h.frame({ type: 'nick', room: 'lobby', old: 'carl', nick: 'Alf', ts: '2026-11-22T03:04:08.000Z' });
  assert.deepEqual(h.users, ['ann', 'Alf', 'bob']);
  h.frame({ type: 'leave', room: 'lobby', nick: 'bob', ts: '2026-11-22T03:04:09.000Z', reason: 'timeout' });
  assert.deepEqual(h.users, ['ann', 'Alf']);
  assert.equal(h.roster.count, 2);
  assert.deepEqual(h.notices, ['carl joined', 'carl is now known as Alf', 'bob timed out']);
});

test('typing shows in a small room; a presence frame takes away the hint of whoever left', () => {
  const h = new Harness();
  h.signIn('ann', { users: ['bob', 'cy'] });
  const typing = () => h.renders.filter((r) => r.view === 'typing').pop().names;
  h.frame({ type: 'typing', room: 'lobby', nick: 'bob' });
  h.frame({ type: 'typing', room: 'lobby', nick: 'cy' });
  assert.deepEqual(typing(), ['bob', 'cy']);
  // The room grew past the threshold: the next change comes as a presence frame.
  h.frame(presence({ user_count: 3, left: ['bob'], renamed: [{ old: 'cy', nick: 'cyd' }], joined: ['dee'] }));
  assert.deepEqual(typing(), []);
  assert.equal(h.timers.has('typing:bob'), false);
});

test('a truncated presence frame marks the list stale; Refresh re-pages it as far as it went', () => {
  const h = largeRoom('ann', ['ann', 'bob', 'cy'], 10);
  h.frame(presence({ user_count: 10, left: ['cy'], left_more: 5 }));
  assert.equal(h.roster.stale, true);
  h.handle({ type: 'refreshUsers' });
  assert.deepEqual(h.whos.at(-1), { type: 'who' }, 'from the start');
  assert.equal(h.roster.loading, true);
  h.frame(page(['ann', 'bo'], 10, 'bo'));
  assert.deepEqual(h.whos.at(-1), { type: 'who', after: 'bo' }, 'not yet as far as cy: on by itself');
  h.frame(page(['dee', 'eve'], 10, 'eve'));
  assert.deepEqual(h.users, ['ann', 'bo', 'dee', 'eve']);
  assert.deepEqual(h.roster, { count: 10, more: 6, stale: false, loading: false });
  assert.equal(h.whos.length, 2, 'done: nothing more asked');
});

test('a welcome resets the list: after a reconnect it starts again from the first page', () => {
  const h = largeRoom('ann', ['ann', 'bob', 'cy'], 50);
  h.handle({ type: 'moreUsers' });
  h.frame(page(['dee', 'eve', 'fay'], 50, 'fay'));
  h.frame(presence({ user_count: 50, joined_more: 2 }));
  h.handle({ type: 'moreUsers' });
  assert.equal(h.roster.loading, true);
  h.close(1001);
  assert.equal(h.roster.loading, false, 'no answer comes on a closed socket');
  const sent = h.whos.length;
  h.handle({ type: 'moreUsers' });
  h.handle({ type: 'refreshUsers' });
  assert.equal(h.whos.length, sent, 'nothing is asked while disconnected');
  assert.equal(h.roster.loading, false, 'and nothing is waited for');
  h.fireReconnect();
  h.open();
  h.welcome({ nick: 'ann', users: ['ann', 'al', 'bob'], user_count: 51 });
  assert.deepEqual(h.users, ['ann', 'al', 'bob']);
  assert.deepEqual(h.roster, { count: 51, more: 48, stale: false, loading: false });
  assert.equal(lastOps(h)[0].op, 'reset');
});

test('presence and pages of another room, and pages nobody asked for, change nothing', () => {
  const h = largeRoom('ann', ['ann', 'bob'], 5);
  const renders = h.rosterOps.length;
  h.frame(presence({ room: 'elsewhere', user_count: 99, joined: ['al'] }));
  h.frame(page(['al', 'cy'], 5, null));
  h.frame(page(['al', 'cy'], 99, null, 'elsewhere'));
  assert.deepEqual(h.users, ['ann', 'bob']);
  assert.equal(h.roster.count, 5);
  assert.equal(h.rosterOps.slice(renders).flat().length, 0);
});

test('a room switch answers a who asked before its welcome after it: that page is not applied', () => {
  const h = largeRoom('ann', ['ann', 'bob'], 5);
  h.handle({ type: 'hashchange', hash: '#rust' }); // sends the join; the welcome is on its way
  h.handle({ type: 'moreUsers' }); // asked of lobby's list, answered (by the server) for rust
  assert.deepEqual(h.whos.at(-1), { type: 'who', after: 'bob' });
  h.welcome({ nick: 'ann', room: 'rust', users: ['ann', 'cy'], user_count: 9 });
  h.handle({ type: 'refreshUsers' });
  h.frame(page(['dee', 'eve'], 9, 'eve', 'rust')); // the answer to the lobby who
  assert.deepEqual(h.users, ['ann', 'cy'], 'rust\'s list did not get the page after bob');
  h.frame(page(['ann', 'cy'], 9, 'cy', 'rust')); // the answer to the refresh
  assert.deepEqual(h.users, ['ann', 'cy']);
  assert.deepEqual(h.roster, { count: 9, more: 7, stale: false, loading: false });
});

test('my own rename in a large room shows at once; the presence frame repeating it changes nothing', () => {
  const h = largeRoom('ann', ['ann', 'bob'], 300);
  h.handle({ type: 'rename' });
  h.handle({ type: 'submitNick', nick: 'zed' });
  h.frame({ type: 'nick', room: 'lobby', old: 'ann', nick: 'zed', ts: '2026-11-22T03:05:01.000Z' });
  assert.deepEqual(h.users, ['zed', 'bob']);
  assert.equal(h.rows.order[0].me, true);
  const notices = h.notices.length;
  h.frame(presence({ user_count: 300, renamed: [{ old: 'ann', nick: 'zed' }] }));
  assert.deepEqual(lastOps(h), []);
  assert.deepEqual(h.users, ['zed', 'bob']);
  assert.deepEqual(h.notices.slice(notices), [BUSY_ROOM_NOTICE], 'no "is now known as" line');
});
