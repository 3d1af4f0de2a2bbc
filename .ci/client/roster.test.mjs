// The member list's bookkeeping (static/roster.js): the count, the names held, "and N more",
// paging with `who`, presence frames applied as one step, stale after a truncated frame, and a
// model of the server's presence (engine/src/presence.rs) whose every member list the roster
// must match.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { compareKeys, nickKey, Roster } from '../../static/roster.js';
import { seededRandom } from '../../static/session.js';
import { Rows } from './harness.mjs';

/** A roster whose ops are applied to view-like rows as they come, so both can be checked. */
function roster(welcome) {
  const r = new Roster();
  r.rows = new Rows();
  r.sync = () => {
    const taken = r.take();
    r.rows.apply(taken.ops);
    return taken;
  };
  if (welcome) {
    r.reset(welcome);
    r.sync();
  }
  return r;
}

function presence(fields) {
  return { type: 'presence', room: 'r', joined: [], left: [], renamed: [], joined_more: 0, left_more: 0, renamed_more: 0, ...fields };
}

function users(list, userCount, next) {
  return { type: 'users', room: 'r', users: list, user_count: userCount, next };
}

// ------------------------------------------------------------------ order

test('names sort as the server sorts them: lowercase, then by code point', () => {
  const names = ['bob', 'Ann', 'cy', 'ann2', 'Zoe', 'émile', '𝒜l', 'ａx', 'b'];
  const sorted = [...names].sort((a, b) => compareKeys(nickKey(a), nickKey(b)));
  // 'ａ' (U+FF41) is below '𝒜' (U+1D49C) in code points (the server's UTF-8 byte order),
  // though UTF-16 puts the surrogate pair of '𝒜' first.
  assert.deepEqual(sorted, ['Ann', 'ann2', 'b', 'bob', 'cy', 'Zoe', 'émile', 'ａx', '𝒜l']);
  assert.ok(compareKeys('ａ', '𝒜') < 0 && compareKeys('𝒜', 'ａ') > 0);
  assert.ok(compareKeys('\ud7ff', '𝒜') < 0, 'below the surrogates UTF-16 and code points agree');
  assert.equal(compareKeys('abc', 'abc'), 0);
  assert.ok(compareKeys('ab', 'abc') < 0);
  assert.equal(nickKey('BoB'), 'bob');
});

// ------------------------------------------------------------------ welcome

test('a welcome holds its page and the joiner (listed first), and counts the rest as more', () => {
  const r = roster({ users: ['ann', 'Bob', 'cy'], count: 7, me: 'zed' });
  assert.deepEqual(r.list(), ['zed', 'ann', 'Bob', 'cy']);
  assert.deepEqual(r.rows.names(), r.list());
  assert.equal(r.count, 7);
  assert.equal(r.more, 3, '7 members, 4 names held');
  assert.equal(r.rows.order[0].me, true);
  assert.deepEqual(r.requestMore(), { after: 'cy' }, 'the next page starts after the page\'s last name');

  const inPage = roster({ users: ['ann', 'bob', 'cy'], count: 7, me: 'bob' });
  assert.deepEqual(inPage.list(), ['bob', 'ann', 'cy'], 'the joiner on its page is held once');
  assert.equal(inPage.more, 4);

  const whole = roster({ users: ['ann', 'bob'], count: 2, me: 'bob' });
  assert.equal(whole.more, 0);
  assert.equal(whole.requestMore(), null, 'a room listed whole has nothing to page');
});

test('a welcome resets everything: names, count, stale, a page on its way', () => {
  const r = roster({ users: ['ann', 'bob', 'cy'], count: 9, me: 'me' });
  r.presence(presence({ user_count: 12, joined: ['al'], joined_more: 3 }));
  assert.ok(r.requestMore());
  assert.equal(r.stale, true);
  assert.equal(r.loading, true);
  r.reset({ users: ['dee'], count: 2, me: 'me' });
  const taken = r.sync();
  assert.deepEqual(taken.ops[0], { op: 'reset' });
  assert.deepEqual(r.list(), ['me', 'dee']);
  assert.deepEqual(r.rows.names(), ['me', 'dee']);
  assert.deepEqual({ count: taken.count, more: taken.more, stale: taken.stale, loading: taken.loading },
    { count: 2, more: 0, stale: false, loading: false });
  assert.equal(r.page(users(['x', 'y'], 2, null)), null);
  assert.deepEqual(r.list(), ['me', 'dee'], 'the answer to a who asked before the welcome is not applied');
});

// ------------------------------------------------------------------ paging

test('paging appends each page at the end of the list, without duplicates, until the last', () => {
  const r = roster({ users: ['a1', 'a2', 'a3'], count: 8, me: 'b2' });
  assert.equal(r.more, 4);
  assert.deepEqual(r.requestMore(), { after: 'a3' });
  assert.equal(r.requestMore(), null, 'one page at a time');
  assert.equal(r.sync().loading, true);
  assert.equal(r.page(users(['b1', 'b2', 'b3'], 8, 'b3')), null);
  const second = r.sync();
  assert.deepEqual(second.ops.map((op) => [op.op, op.key, op.before]),
    [['add', 'b1', null], ['add', 'b3', null]], 'one row per new name; this client\'s own is not added twice');
  assert.equal(second.more, 2);
  assert.equal(second.loading, false);
  assert.deepEqual(r.requestMore(), { after: 'b3' });
  assert.equal(r.page(users(['c1', 'c2'], 8, null)), null);
  r.sync();
  assert.deepEqual(r.list(), ['b2', 'a1', 'a2', 'a3', 'b1', 'b3', 'c1', 'c2']);
  assert.deepEqual(r.rows.names(), r.list());
  assert.equal(r.more, 0);
  assert.equal(r.requestMore(), null, 'the last page had no next');
});

test('a users frame nobody asked for changes nothing', () => {
  const r = roster({ users: ['a', 'b'], count: 5, me: 'me' });
  assert.equal(r.page(users(['c', 'd'], 5, null)), null);
  assert.deepEqual(r.list(), ['me', 'a', 'b']);
  assert.equal(r.more, 2);
});

test('a page brings the count the server has now', () => {
  const r = roster({ users: ['a', 'b'], count: 5, me: 'me' });
  r.requestMore();
  r.page(users(['c'], 4, null));
  assert.equal(r.count, 4);
  assert.equal(r.more, 0);
});

// ------------------------------------------------------------------ presence frames

test('a presence frame: leaves out, joins in where the list reaches, the count from the frame', () => {
  const r = roster({ users: ['b', 'd', 'f'], count: 10, me: 'me' });
  r.presence(presence({ user_count: 11, joined: ['c', 'x'], left: ['d'] }));
  const taken = r.sync();
  assert.deepEqual(r.list(), ['me', 'b', 'c', 'f'], 'x sorts past the last name paged in: counted, not held');
  assert.deepEqual(r.rows.names(), r.list());
  assert.deepEqual(taken.ops.map((op) => [op.op, op.key]), [['remove', 'd'], ['add', 'c']]);
  assert.equal(taken.ops[1].before, 'f', 'c goes in its place, not at the end');
  assert.equal(taken.count, 11);
  assert.equal(taken.more, 7);
  assert.equal(taken.stale, false);
});

test('renames in a presence frame: old out, new in, by key; a swap a<->b changes no row', () => {
  const r = roster({ users: ['ann', 'bob', 'cy', 'dee'], count: 4, me: 'dee' });
  r.presence(presence({ user_count: 4, renamed: [{ old: 'ann', nick: 'bob' }, { old: 'bob', nick: 'ann' }] }));
  assert.deepEqual(r.sync().ops, [], 'the same names before and after: nothing to redraw');
  assert.deepEqual(r.list(), ['dee', 'ann', 'bob', 'cy']);

  r.presence(presence({ user_count: 4, renamed: [{ old: 'cy', nick: 'Cyd' }, { old: 'bob', nick: 'Bob' }] }));
  const taken = r.sync();
  assert.deepEqual(r.list(), ['dee', 'ann', 'Bob', 'Cyd']);
  assert.deepEqual(r.rows.names(), r.list());
  assert.deepEqual(taken.ops.filter((op) => op.op === 'add').map((op) => op.nick), ['Cyd', 'Bob'],
    'a change of case is a new row');
});

test('a leave and a join of the same name in one frame keep the row; a new case replaces it', () => {
  const r = roster({ users: ['ann', 'bob'], count: 3, me: 'me' });
  const { gone } = r.presence(presence({ user_count: 3, left: ['bob'], joined: ['bob'] }));
  assert.deepEqual(r.sync().ops, []);
  assert.deepEqual(gone, ['bob'], 'whoever left is reported (a typing hint under that name goes)');
  r.presence(presence({ user_count: 3, left: ['bob'], joined: ['BOB'] }));
  assert.deepEqual(r.sync().ops.map((op) => [op.op, op.key, op.nick]), [['remove', 'bob', undefined], ['add', 'bob', 'BOB']]);
  assert.deepEqual(r.list(), ['me', 'ann', 'BOB']);
  // A name that left while another member took it over in the same frame (renamed into it).
  r.presence(presence({ user_count: 2, left: ['BOB'], renamed: [{ old: 'ann', nick: 'BOB' }] }));
  assert.deepEqual(r.list(), ['me', 'BOB']);
  assert.equal(r.count, 2);
});

test('this client\'s own name is never taken out, and its own rename moves it', () => {
  const r = roster({ users: ['ann', 'me'], count: 4, me: 'me' });
  r.presence(presence({ user_count: 4, left: ['me'] }));
  assert.deepEqual(r.list(), ['me', 'ann']);
  // In a large room the renamer hears its own `nick` at once, the presence frame later.
  r.rename('me', 'zz');
  r.sync();
  assert.deepEqual(r.list(), ['zz', 'ann']);
  assert.equal(r.rows.order[0].me, true);
  r.presence(presence({ user_count: 4, renamed: [{ old: 'me', nick: 'zz' }] }));
  assert.deepEqual(r.sync().ops, [], 'the frame repeats what was applied');
  assert.deepEqual(r.list(), ['zz', 'ann']);
});

// ------------------------------------------------------------------ stale and refresh

test('a truncated presence frame (any *_more) marks the list stale', () => {
  for (const more of ['joined_more', 'left_more', 'renamed_more']) {
    const r = roster({ users: ['a', 'b'], count: 5, me: 'me' });
    r.presence(presence({ user_count: 5 }));
    assert.equal(r.stale, false, more);
    r.presence(presence({ user_count: 5, [more]: 1 }));
    assert.equal(r.sync().stale, true, more);
  }
});

test('a refresh re-pages from the start as far as the list went, then replaces only what changed', () => {
  const r = roster({ users: ['a', 'b', 'c'], count: 9, me: 'me' });
  r.requestMore();
  r.page(users(['d', 'e', 'f'], 9, 'f'));
  r.sync();
  // 120 joins and 120 leaves: only 100 of each listed. b and e left unseen; c2 joined unseen.
  r.presence(presence({ user_count: 9, joined: ['a2'], left: ['a'], joined_more: 20, left_more: 20 }));
  assert.equal(r.sync().stale, true);
  assert.deepEqual(r.list(), ['me', 'a2', 'b', 'c', 'd', 'e', 'f']);

  assert.deepEqual(r.requestRefresh(), { after: null }, 'from the start');
  assert.equal(r.requestMore(), null, 'nothing else while it runs');
  assert.deepEqual(r.page(users(['a2', 'c', 'c2'], 9, 'c2')), { after: 'c2' }, 'not as far as f yet: the next page');
  assert.deepEqual(r.list(), ['me', 'a2', 'b', 'c', 'd', 'e', 'f'], 'the old list stays until the refresh is done');
  // Meanwhile: d left (announced), b2 joined where the refresh has been.
  r.presence(presence({ user_count: 9, left: ['d'], joined: ['b2'] }));
  assert.equal(r.page(users(['f', 'g', 'h'], 9, 'h')), null, 'past f: done');
  const taken = r.sync();
  assert.deepEqual(r.list(), ['me', 'a2', 'b2', 'c', 'c2', 'f', 'g', 'h']);
  assert.deepEqual(r.rows.names(), r.list());
  assert.equal(taken.stale, false);
  assert.equal(taken.loading, false);
  assert.equal(taken.more, 1);
  assert.ok(!taken.ops.some((op) => op.op === 'reset'), 'no rebuild');
  assert.deepEqual(taken.ops.filter((op) => op.op === 'remove').map((op) => op.key).sort(), ['b', 'd', 'e'],
    'd as it was announced, b and e (gone unseen) at the end of the refresh');
  assert.deepEqual(r.requestMore(), { after: 'h' });
});

test('a list paged to the end that a truncated frame left short: "and N more" refreshes it', () => {
  const r = roster({ users: ['a', 'b'], count: 2, me: 'b' });
  assert.equal(r.requestMore(), null, 'everyone is listed');
  r.presence(presence({ user_count: 4, joined: ['c'], joined_more: 1 }));
  assert.deepEqual(r.list(), ['b', 'a', 'c']);
  assert.equal(r.more, 1, 'the join that was not named');
  assert.deepEqual(r.requestMore(), { after: null }, 'from the start: there is no cursor to go on from');
  assert.equal(r.page(users(['a', 'b', 'c', 'd'], 4, null)), null);
  assert.deepEqual(r.list(), ['b', 'a', 'c', 'd']);
  assert.equal(r.stale, false);
});

test('a truncated frame during a refresh leaves the list stale after it', () => {
  const r = roster({ users: ['a', 'b'], count: 6, me: 'me' });
  r.presence(presence({ user_count: 6, left_more: 2 }));
  r.requestRefresh();
  r.presence(presence({ user_count: 6, joined_more: 1 }));
  r.page(users(['a', 'b'], 6, 'b'));
  assert.equal(r.stale, true);
  assert.equal(r.loading, false);
});

test('a refresh of a list paged to the end pages to the end again', () => {
  const r = roster({ users: ['a', 'b'], count: 4, me: 'me' });
  r.requestMore();
  r.page(users(['c'], 4, null));
  r.presence(presence({ user_count: 4, left_more: 1 }));
  r.requestRefresh();
  assert.deepEqual(r.page(users(['a', 'b'], 4, 'b')), { after: 'b' });
  assert.equal(r.page(users(['c', 'd'], 5, null)), null);
  assert.deepEqual(r.list(), ['me', 'a', 'b', 'c', 'd']);
  assert.equal(r.more, 0);
});

test('this client renamed during a refresh: its old name, on a page already in, is not shown', () => {
  const r = roster({ users: ['ann', 'bob'], count: 4, me: 'ann' });
  r.requestMore();
  r.page(users(['cy', 'dee'], 4, null));
  r.presence(presence({ user_count: 4, left_more: 1 }));
  r.requestRefresh();
  assert.deepEqual(r.page(users(['ann', 'bob'], 4, 'bob')), { after: 'bob' }, 'on to the end, as before');
  r.rename('ann', 'zed'); // a small room again: everyone hears it at once
  assert.equal(r.page(users(['cy', 'dee', 'zed'], 4, null)), null);
  r.sync();
  assert.deepEqual(r.list(), ['zed', 'bob', 'cy', 'dee']);
  assert.deepEqual(r.rows.names(), r.list());
});

test('a lost connection abandons a page on its way', () => {
  const r = roster({ users: ['a', 'b'], count: 6, me: 'me' });
  r.requestRefresh();
  r.abandonRequest();
  assert.equal(r.loading, false);
  assert.equal(r.page(users(['x'], 6, null)), null);
  assert.deepEqual(r.list(), ['me', 'a', 'b']);
  assert.deepEqual(r.requestMore(), { after: 'b' });
});

// ------------------------------------------------------------------ small rooms

test('small-room notices: join, leave and rename move the count and single rows', () => {
  const r = roster({ users: ['ann', 'cy', 'me'], count: 3, me: 'me' });
  r.join('bob');
  let taken = r.sync();
  assert.deepEqual(taken.ops, [{ op: 'add', key: 'bob', nick: 'bob', me: false, before: 'cy' }]);
  assert.equal(taken.count, 4);
  r.rename('bob', 'rob');
  r.leave('ann');
  taken = r.sync();
  assert.deepEqual(r.list(), ['me', 'cy', 'rob']);
  assert.deepEqual(r.rows.names(), r.list());
  assert.equal(taken.count, 3);
  assert.equal(taken.more, 0);
});

test('a small room listed in part: a join past the last name paged in is only counted', () => {
  const r = roster({ users: ['a', 'b'], count: 4, me: 'me' });
  r.join('zz');
  r.join('aa');
  assert.deepEqual(r.list(), ['me', 'a', 'aa', 'b']);
  assert.equal(r.count, 6);
  assert.equal(r.more, 2);
  r.leave('zz');
  assert.equal(r.more, 1);
});

// ------------------------------------------------------------------ against a model of the server

/** Code point order, written independently of compareKeys. */
function byCodePoints(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/**
 * One room as the engine keeps it (engine/src/presence.rs): immediate notices up to notifyMax
 * members, past it every change pending per client (its name before, after, and any held in
 * between) until the tick's presence frame, lists cut at changesMax, `who` pages of listMax.
 * Frames to the watched client queue in order; its `who`s are answered some steps later.
 */
class ModelRoom {
  constructor(random, { notifyMax, listMax, changesMax }) {
    Object.assign(this, { random, notifyMax, listMax, changesMax });
    this.members = new Map(); // id -> nick
    this.coalescing = false;
    this.pending = new Map(); // id -> {before, after, held}
    this.toClient = []; // frames for the watched client, in order
    this.toServer = []; // its `who`s not answered yet
    this.me = null; // the watched client's id
    this.nextId = 1;
  }

  taken(nick) {
    return [...this.members.values()].some((n) => nickKey(n) === nickKey(nick));
  }

  sorted() {
    return [...this.members.values()].sort((a, b) => byCodePoints(nickKey(a), nickKey(b)));
  }

  tell(frame) {
    if (this.me != null) this.toClient.push(frame);
  }

  pend(id, before, after) {
    if (!this.pending.has(id)) this.pending.set(id, { before, after: null, held: [] });
    const change = this.pending.get(id);
    const between = change.after;
    change.after = null;
    if (between != null && change.before !== between && !change.held.includes(between)) change.held.push(between);
    change.after = after;
  }

  join(nick, { watched = false } = {}) {
    const id = this.nextId++;
    this.members.set(id, nick);
    if (this.members.size > this.notifyMax) this.coalescing = true;
    if (this.coalescing) this.pend(id, null, nick);
    else if (!watched) this.tell({ type: 'join', room: 'r', nick });
    if (watched) {
      this.me = id;
      this.toClient = [];
      this.toServer = [];
      const page = this.sorted().slice(0, this.listMax);
      this.tell({ type: 'welcome', room: 'r', nick, users: page, user_count: this.members.size });
    }
    return id;
  }

  leave(id) {
    const nick = this.members.get(id);
    this.members.delete(id);
    if (id === this.me) {
      this.me = null;
      this.toClient = [];
    }
    if (this.coalescing) this.pend(id, nick, null);
    else this.tell({ type: 'leave', room: 'r', nick, reason: 'left' });
  }

  rename(id, nick) {
    const old = this.members.get(id);
    this.members.set(id, nick);
    if (this.coalescing) {
      this.pend(id, old, nick);
      if (id === this.me) this.tell({ type: 'nick', room: 'r', old, nick });
    } else {
      this.tell({ type: 'nick', room: 'r', old, nick });
    }
  }

  tick() {
    if (this.pending.size === 0) return;
    if (this.members.size <= this.notifyMax) this.coalescing = false;
    const joined = [];
    const left = [];
    const renamed = [];
    for (const { before, after, held } of this.pending.values()) {
      if (before == null && after != null) joined.push(after);
      else if (before != null && after == null) left.push(before);
      else if (before != null && after != null && before !== after) renamed.push({ old: before, nick: after });
      left.push(...held);
    }
    this.pending.clear();
    const more = (list) => Math.max(0, list.length - this.changesMax);
    this.tell({
      type: 'presence', room: 'r', user_count: this.members.size,
      joined: joined.slice(0, this.changesMax), left: left.slice(0, this.changesMax), renamed: renamed.slice(0, this.changesMax),
      joined_more: more(joined), left_more: more(left), renamed_more: more(renamed),
    });
  }

  answerWho() {
    const after = this.toServer.shift();
    const key = after == null ? null : nickKey(after);
    const rest = this.sorted().filter((n) => key == null || byCodePoints(nickKey(n), key) > 0);
    const page = rest.slice(0, this.listMax);
    const next = rest.length > this.listMax ? page[page.length - 1] : null;
    this.tell({ type: 'users', room: 'r', users: page, user_count: this.members.size, next });
  }
}

/** How often each kind of thing happened over all seeds, so the test knows it covered them. */
const seen = {};
const saw = (what) => { seen[what] = (seen[what] ?? 0) + 1; };

/** Feeds frames to the roster as session.js does; its `who`s go to the model. */
function deliver(room, r) {
  const frame = room.toClient.shift();
  saw(frame.type);
  if (frame.type === 'presence' && (frame.joined_more || frame.left_more || frame.renamed_more)) saw('truncated');
  if (frame.type === 'presence' && frame.renamed.length) saw('renamed');
  if (frame.type === 'users' && r.ignore > 0) saw('ignored');
  const wasRefreshing = r.refresh != null;
  let ask = null;
  switch (frame.type) {
    case 'welcome': r.reset({ users: frame.users, count: frame.user_count, me: frame.nick }); break;
    case 'join': r.join(frame.nick); break;
    case 'leave': r.leave(frame.nick); break;
    case 'nick': r.rename(frame.old, frame.nick); break;
    case 'presence': r.presence(frame); break;
    case 'users': ask = r.page(frame); break;
    default: assert.fail(frame.type);
  }
  if (ask) room.toServer.push(ask.after);
  if (ask) saw('refresh page');
  if (wasRefreshing && !r.refresh && !r.stale) saw('refreshed');
  r.sync();
}

/** What the roster must hold when nothing is on its way: the prefix of the room up to its
 *  cursor, plus its own name, in the shown order, and the room's count. */
function expected(room, r) {
  const me = room.members.get(room.me);
  const all = room.sorted();
  const held = all.filter((n) => n === me || r.cursor == null || byCodePoints(nickKey(n), r.cursor.key) <= 0);
  return [me, ...held.filter((n) => n !== me)];
}

const POOL = ['ann', 'Ann', 'bob', 'BOB', 'cy', 'dee', 'eve', 'fay', 'gus', 'hal', 'ivy', 'jo', 'émile', 'ａx', '𝒜l', 'zoë'];

test('against a model of the server: every quiet moment, the list is exactly what the server has', () => {
  for (let seed = 1; seed <= 60; seed++) {
    const random = seededRandom(seed);
    const pick = (list) => list[Math.floor(random() * list.length)];
    const room = new ModelRoom(random, { notifyMax: 4, listMax: 3, changesMax: 2 + Math.floor(random() * 2) });
    const free = () => POOL.filter((n) => !room.taken(n));
    for (let i = 0; i < 3; i++) room.join(pick(free()));
    room.join(pick(free()), { watched: true });
    const r = roster();
    let checks = 0;
    for (let step = 0; step < 400; step++) {
      const roll = random();
      const others = [...room.members.keys()].filter((id) => id !== room.me);
      if (roll < 0.12 && free().length) room.join(pick(free()));
      else if (roll < 0.22 && others.length) room.leave(pick(others));
      else if (roll < 0.30 && free().length) room.rename(pick([...room.members.keys()]), pick(free()));
      else if (roll < 0.50) room.tick();
      else if (roll < 0.62 && room.toServer.length) room.answerWho();
      else if (roll < 0.70) {
        const ask = r.stale ? r.requestRefresh() : r.requestMore();
        if (ask) room.toServer.push(ask.after);
      } else if (roll < 0.71) {
        // The watched client reconnects: a new socket (what was asked on the old one is never
        // answered, as session.js tells the roster), a new welcome.
        r.abandonRequest();
        const nick = room.members.get(room.me);
        room.leave(room.me);
        room.join(nick, { watched: true });
      }
      while (room.toClient.length && random() < 0.7) deliver(room, r);
      const quiet = room.pending.size === 0 && room.toClient.length === 0 && room.toServer.length === 0;
      if (quiet && !r.stale) {
        checks += 1;
        const want = expected(room, r);
        assert.deepEqual(r.list(), want, `seed ${seed} step ${step}`);
        assert.deepEqual(r.rows.names(), want, `seed ${seed} step ${step}: the rows`);
        assert.equal(r.count, room.members.size, `seed ${seed} step ${step}: the count`);
        assert.equal(r.more, room.members.size - want.length, `seed ${seed} step ${step}: and N more`);
        assert.deepEqual(r.rows.order.map((row) => row.me), want.map((_, i) => i === 0), `seed ${seed} step ${step}: (you)`);
      }
    }
    // Settle, refresh if stale, then page everything: the whole room, once each.
    room.tick();
    room.tick();
    for (let guard = 0; guard < 100; guard++) {
      while (room.toClient.length) deliver(room, r);
      if (room.toServer.length) {
        room.answerWho();
        continue;
      }
      const ask = r.stale ? r.requestRefresh() : r.requestMore();
      if (!ask) break;
      room.toServer.push(ask.after);
    }
    const me = room.members.get(room.me);
    assert.deepEqual(r.list(), [me, ...room.sorted().filter((n) => n !== me)], `seed ${seed}: paged to the end`);
    assert.deepEqual(r.rows.names(), r.list(), `seed ${seed}: the rows at the end`);
    assert.equal(r.more, 0);
    assert.equal(r.count, room.members.size);
    assert.ok(checks >= 20, `seed ${seed}: checked ${checks} quiet moments`);
  }
  for (const what of ['welcome', 'join', 'leave', 'nick', 'presence', 'renamed', 'truncated', 'users', 'refresh page', 'refreshed', 'ignored']) {
    assert.ok(seen[what] >= 5, `the model produced ${what} ${seen[what] ?? 0} times: ${JSON.stringify(seen)}`);
  }
});
