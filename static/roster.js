// Who is in the room on screen, as far as this client knows: the member count, the names it
// has, in the server's order, whether they may be out of date, and the `who` paging cursor.
// Pure: no DOM, no sockets. session.js feeds it server frames and asks it what to send; every
// change to the names is recorded as an op (add one / remove one) for view.js to apply to one
// row each, so a join in a room of 19,000 costs one DOM node, never a redraw of the list.
//
// The names held are always a prefix of the room's members in the server's order (every member
// whose name sorts up to the cursor, the last name paged in), plus this client's own name
// wherever it sorts. So "and N more" is exactly the count minus the names held, each `who` page
// extends the prefix at its end, and a join past the cursor is only counted: the page that
// covers it brings the name. The list grows only as far as the person pages it, whatever the
// size of the room.
//
// A `presence` frame whose lists were cut short (`*_more` > 0) leaves the prefix possibly wrong:
// the roster is then `stale` until the person asks for a refresh. It never re-pages by itself:
// every member of a large room gets the same truncated frame at the same tick, and thousands of
// clients re-paging at once would be a burst of `who` exactly when the room is busiest.

/** The key a nickname is unique by and sorted by on the server (engine: `names::nick_key`). */
export function nickKey(nick) {
  return nick.toLowerCase();
}

/**
 * The server's order of keys: it sorts their UTF-8 bytes, that is code points. JavaScript
 * compares UTF-16 code units, which differ only where a surrogate (a code point past U+FFFF)
 * meets a unit in U+E000..U+FFFF: UTF-16 puts the surrogate first, the server last.
 */
export function compareKeys(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xSurrogate = x >= 0xd800 && x <= 0xdfff;
    const ySurrogate = y >= 0xd800 && y <= 0xdfff;
    if (xSurrogate && !ySurrogate && y >= 0xe000) return 1;
    if (ySurrogate && !xSurrogate && x >= 0xe000) return -1;
    return x - y;
  }
  return a.length - b.length;
}

function strings(list) {
  return Array.isArray(list) ? list.filter((s) => typeof s === 'string' && s !== '') : [];
}

function count(value) {
  return Number.isSafeInteger(value) && value >= 0 ? value : null;
}

export class Roster {
  constructor() {
    this.meKey = null; // the key of this client's own name: always held, listed first
    this.count = 0; // members of the room, as the server last said (or counted since)
    this.names = new Map(); // key -> nickname, every name held
    this.order = []; // keys of `names`: this client's first, then the server's order
    // The prefix held: every member whose key sorts up to cursor.key is in `names`; the next
    // page is `who` after cursor.nick. null: every member is held.
    this.cursor = null;
    this.stale = false; // a truncated presence frame may have left `names` wrong
    this.loading = false; // a `who` is on its way; its `users` answer is ours
    // Answers still to come to `who`s asked before the last welcome: they page another list.
    // (A `who` sent after a `join` but before its welcome is answered after the welcome.)
    this.ignore = 0;
    this.refresh = null; // re-paging from the start: {fresh, cursor, until, truncated}
    this.ops = []; // changes not yet taken by the view
  }

  /** Members known to be in the room but not held: "and N more". */
  get more() {
    return Math.max(0, this.count - this.names.size);
  }

  /** The names held, in the order shown. */
  list() {
    return this.order.map((key) => this.names.get(key));
  }

  /** What changed since the last call, for the view: ops to apply in order, then the labels. */
  take() {
    const ops = this.ops;
    this.ops = [];
    return { ops, count: this.count, more: this.more, stale: this.stale, loading: this.loading };
  }

  // ------------------------------------------------------------ from the server

  /** A `welcome`: the first page of names (in the server's order) and the count, afresh. */
  reset({ users, count: total, me }) {
    const page = strings(users);
    this.names.clear();
    this.order = [];
    this.ops = [{ op: 'reset' }];
    this.refresh = null;
    if (this.loading) this.ignore += 1;
    this.loading = false;
    this.stale = false;
    this.setMe(me);
    this.put(me);
    for (const nick of page) {
      if (nickKey(nick) !== this.meKey) this.put(nick);
    }
    // user_count counts the joiner, and the first page lists it when it sorts there: a page as
    // long as the count is the whole room.
    this.count = Math.max(count(total) ?? 0, this.names.size);
    const last = page[page.length - 1];
    this.cursor = page.length >= this.count ? null : { nick: last ?? '', key: last ? nickKey(last) : '' };
  }

  /** A `join` notice (a small room): one more member, held if it sorts within the prefix. */
  join(nick) {
    this.count += 1;
    this.learn(nick);
  }

  /** A `leave` notice (a small room). */
  leave(nick) {
    this.count = Math.max(0, this.count - 1);
    this.forget(nickKey(nick));
  }

  /** A `nick` notice: in a small room everyone's, in a large one only this client's own. */
  rename(old, nick) {
    const key = nickKey(old);
    if (key === this.meKey) {
      this.drop(key);
      // Whoever had the name before is gone, though a large room may not have said so yet.
      this.drop(nickKey(nick));
      this.setMe(nick);
      this.put(nick);
      if (this.refresh) this.refresh.fresh.delete(key); // a page may have listed the old name
      return;
    }
    this.forget(key);
    this.learn(nick);
  }

  /**
   * A `presence` frame (a large room), as one step: every `left` name and renamed `old` out,
   * then every renamed `nick` and `joined` name in (if it sorts within the prefix). A name both
   * out and in (a swap a<->b, or a leave and a join of the same name) stays where it is.
   * This client's own name is never taken out: it is a member while it gets these frames.
   */
  presence(frame) {
    const renamed = Array.isArray(frame.renamed)
      ? frame.renamed.filter((r) => r && typeof r.old === 'string' && typeof r.nick === 'string' && r.nick !== '')
      : [];
    const out = new Set(strings(frame.left).map(nickKey));
    for (const r of renamed) out.add(nickKey(r.old));
    const into = new Map();
    for (const r of renamed) into.set(nickKey(r.nick), r.nick);
    for (const nick of strings(frame.joined)) into.set(nickKey(nick), nick);

    for (const key of out) {
      if (this.names.has(key) && into.get(key) === this.names.get(key)) continue;
      this.forget(key);
    }
    for (const nick of into.values()) this.learn(nick);

    const total = count(frame.user_count);
    if (total != null) this.count = total;
    const truncated = [frame.joined_more, frame.left_more, frame.renamed_more].some((n) => count(n) > 0);
    if (truncated) {
      this.stale = true;
      if (this.refresh) this.refresh.truncated = true;
    }
    // Whoever left or was renamed is not typing under that name any more.
    return { gone: [...strings(frame.left), ...renamed.map((r) => r.old)] };
  }

  /**
   * A `users` page. Only the answer to this client's own `who` counts (anything else is not
   * ours to apply). Returns the next `who` to send when a refresh has further to go, else null.
   */
  page(frame) {
    if (this.ignore > 0) {
      this.ignore -= 1;
      return null;
    }
    if (!this.loading) return null;
    this.loading = false;
    const total = count(frame.user_count);
    if (total != null) this.count = total;
    const users = strings(frame.users);
    const next = typeof frame.next === 'string' && frame.next !== ''
      ? { nick: frame.next, key: nickKey(frame.next) }
      : null;

    const refresh = this.refresh;
    if (refresh) {
      for (const nick of users) refresh.fresh.set(nickKey(nick), nick);
      refresh.cursor = next;
      // Re-page as far as the list went before, so a refresh never shortens it.
      const far = next == null || (refresh.until != null && compareKeys(next.key, refresh.until) >= 0);
      if (!far) {
        this.loading = true;
        return { after: next.nick };
      }
      this.finishRefresh();
      return null;
    }
    for (const nick of users) {
      if (nickKey(nick) !== this.meKey) this.put(nick);
    }
    this.cursor = next;
    return null;
  }

  // ------------------------------------------------------------ what the person asks for

  /** The `who` to send for "and N more", or null when there is nothing to ask (or it is asked). */
  requestMore() {
    if (this.loading) return null;
    if (this.cursor == null) {
      // Everyone is held, yet the count says more: the names went wrong, page them afresh.
      return this.more > 0 ? this.requestRefresh() : null;
    }
    this.loading = true;
    return { after: this.cursor.key === '' ? null : this.cursor.nick };
  }

  /** Re-pages from the start, as far as the list went: the `who` to send, or null if busy. */
  requestRefresh() {
    if (this.loading) return null;
    this.refresh = {
      fresh: new Map(), // key -> nickname of the members paged so far
      cursor: { nick: '', key: '' }, // the prefix `fresh` holds (none yet)
      until: this.cursor ? this.cursor.key : null, // how far to re-page; null: to the end
      truncated: false, // a truncated presence frame came meanwhile
    };
    this.loading = true;
    return { after: null };
  }

  /** The connection is gone: no answer will come to what was asked. */
  abandonRequest() {
    this.loading = false;
    this.ignore = 0;
    this.refresh = null;
  }

  // ------------------------------------------------------------ the names and their order

  setMe(nick) {
    this.meKey = nickKey(nick);
  }

  within(key, cursor) {
    return cursor == null || compareKeys(key, cursor.key) <= 0;
  }

  /** A member with this name is in the room: held if the prefix covers it (and, while a
   *  refresh is under way, in its fresh names if the pages so far cover it). */
  learn(nick) {
    const key = nickKey(nick);
    if (key === this.meKey) return; // only the welcome and this client's own `nick` say who it is
    if (this.within(key, this.cursor)) this.put(nick);
    if (this.refresh && this.within(key, this.refresh.cursor)) this.refresh.fresh.set(key, nick);
  }

  /** No member has this name any more; this client's own stays while it is in the room. */
  forget(key) {
    if (key === this.meKey) return;
    this.drop(key);
    if (this.refresh) this.refresh.fresh.delete(key);
  }

  /** Where `key` is or would go in `order`. */
  position(key) {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.before(this.order[mid], key)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Whether key `a` is shown above key `b`: this client's own name first, then the server's order. */
  before(a, b) {
    if (a === b) return false;
    if (a === this.meKey) return true;
    if (b === this.meKey) return false;
    return compareKeys(a, b) < 0;
  }

  put(nick) {
    const key = nickKey(nick);
    const held = this.names.get(key);
    if (held === nick) return;
    if (held !== undefined) this.drop(key); // the same name in another case: a new row
    const at = this.position(key);
    this.order.splice(at, 0, key);
    this.names.set(key, nick);
    this.ops.push({ op: 'add', key, nick, me: key === this.meKey, before: this.order[at + 1] ?? null });
  }

  drop(key) {
    if (!this.names.has(key)) return;
    this.order.splice(this.position(key), 1);
    this.names.delete(key);
    this.ops.push({ op: 'remove', key });
  }

  finishRefresh() {
    const { fresh, cursor, truncated } = this.refresh;
    this.refresh = null;
    for (const key of [...this.order]) {
      if (key !== this.meKey && !fresh.has(key)) this.drop(key);
    }
    // This client's own name is in `fresh` only as it is now (its rename took the old one out).
    for (const nick of fresh.values()) this.put(nick);
    this.cursor = cursor;
    this.stale = truncated;
  }
}
