// The page: every DOM read and write of the client. `createView(document)` returns one function
// per `render` effect of session.js (named by its `view` field), plus `fatal` for a client that
// cannot start. Text from users and the server only ever goes in through textContent (or an
// input's value), never innerHTML, so it cannot become markup. Layout details that only the page
// knows live here too: day dividers, grouping of consecutive messages, scrolling, focus.
// Older messages paged in above the top keep what the person is reading where it is. How many
// items the log keeps is session.js's (scrollback.js) to decide, since it must know what is shown.
// The member list is keyed: one row per name in a Map, each roster op (roster.js) adds or removes
// one row, so no event costs work in proportion to the room.

/** The top of the log counts as in view this close to it, so the next page is asked for a little
 *  before the person reaches the end of what is loaded. */
const NEAR_TOP_PX = 200;
/** Consecutive messages of one person this close together form a group (name shown once). */
const GROUP_MS = 5 * 60 * 1000;
const COUNTDOWN_EVERY_MS = 250;

const STATUS_TEXT = {
  connecting: 'Connecting...',
  connected: 'Connected',
  offline: 'Offline',
  'need-nick': 'Choose a nickname',
  idle: 'Not joined',
};

function hueOf(nick) {
  let h = 0;
  for (const ch of nick.toLowerCase()) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
}

function initialOf(nick) {
  const first = [...(nick || '?').trim()][0] || '?';
  return first.toUpperCase();
}

function parseTime(ts) {
  const d = ts ? new Date(ts) : new Date();
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

function formatTime(d) {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function formatDay(d) {
  const today = new Date();
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return d.toLocaleDateString([], { weekday: 'long', month: 'long', day: 'numeric' });
}

function countdownText(reconnectAt) {
  const secs = Math.max(0, Math.ceil((reconnectAt - Date.now()) / 1000));
  return secs > 0 ? `Reconnecting in ${secs} s...` : 'Reconnecting...';
}

function typingText(names) {
  if (names.length === 1) return `${names[0]} is typing...`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing...`;
  if (names.length > 2) return 'Several people are typing...';
  return '';
}

export function createView(doc) {
  const $ = (id) => doc.getElementById(id);
  const el = {
    status: $('status'),
    statusText: $('status-text'),
    retry: $('retry'),
    roomName: $('room-name'),
    login: $('login'),
    loginTitle: $('login-title'),
    loginRoom: $('login-room'),
    loginError: $('login-error'),
    loginSubmit: $('login-submit'),
    loginCancel: $('login-cancel'),
    nickInput: $('nick-input'),
    chat: $('chat'),
    log: $('log'),
    logHead: $('log-head'),
    historyStart: $('history-start'),
    historyLoading: $('history-loading'),
    typing: $('typing'),
    chatError: $('chat-error'),
    chatErrorText: $('chat-error-text'),
    composer: $('composer'),
    messageInput: $('message-input'),
    meNick: $('me-nick'),
    meAvatar: $('me-avatar'),
    roomInput: $('room-input'),
    users: $('users'),
    userCount: $('user-count'),
    usersMore: $('users-more'),
    usersStale: $('users-stale'),
    usersRefresh: $('users-refresh'),
  };
  const userRows = new Map(); // roster key -> the <li> of that name
  const messageRows = new Map(); // "epoch:seq" -> the <li> of that message
  const messageInfo = new WeakMap(); // message <li> -> {nick, at}, for grouping across a seam

  let countdown = 0; // interval id while the status counts down to a reconnect
  let lastDay = ''; // day of the last message, for day dividers
  let lastMsg = null; // {nick, at} of the message at the end of the log, for grouping

  function paintAvatar(node, nick) {
    node.textContent = initialOf(nick);
    node.style.setProperty('--hue', String(hueOf(nick || '')));
  }

  function stopCountdown() {
    if (countdown) clearInterval(countdown);
    countdown = 0;
  }

  function setLoginError(text) {
    el.loginError.textContent = text || '';
    el.loginError.hidden = !text;
    el.nickInput.setAttribute('aria-invalid', text ? 'true' : 'false');
  }

  function nearBottom() {
    return el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 120;
  }

  function appendItem(li, forceScroll) {
    if (!li.classList.contains('msg')) lastMsg = null;
    const stick = forceScroll || nearBottom();
    el.log.appendChild(li);
    if (stick) el.log.scrollTop = el.log.scrollHeight;
  }

  /** Runs `change` (which adds or removes items above `keep`) and scrolls by however far `keep`
   *  moved, so the message on screen stays put. Browsers' own scroll anchoring is off for the log
   *  (style.css): it would do this only sometimes (never at scrollTop 0, the usual case here). */
  function keepingPlace(keep, change) {
    const before = keep ? keep.getBoundingClientRect().top : 0;
    change();
    if (keep && keep.isConnected) el.log.scrollTop += keep.getBoundingClientRect().top - before;
  }

  function dayDivider(d) {
    const li = doc.createElement('li');
    li.className = 'day';
    li.setAttribute('aria-hidden', 'true');
    li.dataset.day = d.toDateString();
    li.textContent = formatDay(d);
    return li;
  }

  function maybeDayDivider(d) {
    const day = d.toDateString();
    if (day === lastDay) return;
    lastDay = day;
    appendItem(dayDivider(d));
  }

  function continues(prev, nick, when) {
    return !!prev && prev.nick === nick && when - prev.at >= 0 && when - prev.at < GROUP_MS;
  }

  /** The <li> of a message; `prev` is {nick, at} of the message right above it, if any. */
  function messageItem({ nick, text, seq, key, mine }, when, prev) {
    const li = doc.createElement('li');
    li.className = mine ? 'msg mine' : 'msg';
    if (continues(prev, nick, when)) li.classList.add('cont');
    if (seq != null) li.dataset.seq = String(seq);

    const avatar = doc.createElement('span');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    paintAvatar(avatar, nick);

    const bubble = doc.createElement('div');
    bubble.className = 'bubble';
    const meta = doc.createElement('div');
    meta.className = 'meta';
    const who = doc.createElement('span');
    who.className = 'nick';
    who.textContent = nick;
    who.style.setProperty('--hue', String(hueOf(nick)));
    const time = doc.createElement('time');
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    time.textContent = formatTime(when);
    meta.append(who, time);
    const body = doc.createElement('p');
    body.className = 'text';
    body.textContent = text;
    bubble.append(meta, body);
    li.append(avatar, bubble);
    if (key) {
      li.dataset.key = key;
      messageRows.set(key, li);
    }
    messageInfo.set(li, { nick, at: when });
    return li;
  }

  function forgetItem(li) {
    if (li.dataset.key) messageRows.delete(li.dataset.key);
  }

  function userRow(nick, me) {
    const li = doc.createElement('li');
    li.className = me ? 'user me-user' : 'user';
    const avatar = doc.createElement('span');
    avatar.className = 'avatar avatar-small';
    avatar.setAttribute('aria-hidden', 'true');
    paintAvatar(avatar, nick);
    const name = doc.createElement('span');
    name.className = 'user-name';
    name.textContent = nick;
    li.append(avatar, name);
    if (me) {
      const you = doc.createElement('span');
      you.className = 'you';
      you.textContent = '(you)';
      li.append(you);
    }
    return li;
  }

  function clearChatError() {
    el.chatError.hidden = true;
    el.chatErrorText.textContent = '';
  }

  return {
    limits({ limits }) {
      el.nickInput.maxLength = limits.nickCharsMax;
      el.roomInput.maxLength = limits.roomCharsMax;
      el.roomInput.placeholder = limits.defaultRoom;
    },

    status({ phase, reconnectAt }) {
      el.status.dataset.state = phase;
      el.chat.classList.toggle('is-disconnected', phase !== 'connected');
      el.retry.hidden = !(phase === 'reconnecting' || phase === 'offline');
      stopCountdown();
      if (phase === 'reconnecting') {
        el.statusText.textContent = countdownText(reconnectAt);
        countdown = setInterval(() => { el.statusText.textContent = countdownText(reconnectAt); }, COUNTDOWN_EVERY_MS);
      } else {
        el.statusText.textContent = STATUS_TEXT[phase] || STATUS_TEXT.idle;
      }
    },

    composer({ ready, room }) {
      el.composer.classList.toggle('is-offline', !ready);
      el.messageInput.placeholder = ready ? `Message #${room}` : 'Waiting for the connection...';
    },

    roomName({ room, force }) {
      el.roomName.textContent = room;
      el.loginRoom.textContent = room;
      doc.title = `#${room} - Chat`;
      // Never overwrite what the person is typing into the room box.
      if (force || doc.activeElement !== el.roomInput) el.roomInput.value = room;
    },

    login({ error, rename, cancelable, nick, select }) {
      el.login.hidden = false;
      el.chat.hidden = true;
      el.loginTitle.textContent = rename ? 'Change your name' : 'Join the conversation';
      el.loginSubmit.textContent = rename ? 'Save' : 'Join chat';
      el.loginCancel.hidden = !cancelable;
      setLoginError(error);
      if (nick != null) el.nickInput.value = nick;
      el.loginSubmit.disabled = false;
      el.nickInput.focus();
      if (select) el.nickInput.select();
    },

    offerNick({ nick }) {
      // Not over a name typed while the page was still starting.
      if (!el.nickInput.value) el.nickInput.value = nick;
    },

    loginError({ text, focus }) {
      setLoginError(text);
      if (focus) el.nickInput.focus();
    },

    loginBusy({ busy }) {
      el.loginSubmit.disabled = busy;
    },

    chat() {
      const wasHidden = el.chat.hidden;
      el.login.hidden = true;
      el.chat.hidden = false;
      setLoginError('');
      if (wasHidden) {
        el.messageInput.focus();
        el.log.scrollTop = el.log.scrollHeight;
      }
    },

    chatError({ text }) {
      el.chatErrorText.textContent = text;
      el.chatError.hidden = false;
    },

    clearChatError,

    clearLog() {
      el.log.replaceChildren(el.logHead);
      messageRows.clear();
      lastDay = '';
      lastMsg = null;
    },

    /** Whether the top of the log is in view, or close; never while the log is not shown. */
    logNearTop() {
      return !el.chat.hidden && el.log.scrollTop < NEAR_TOP_PX;
    },

    historyState({ loading, complete }) {
      el.historyLoading.hidden = !loading;
      // The marker takes a line above everything: keep the reader's place when it comes or goes.
      keepingPlace(el.logHead.nextElementSibling, () => { el.historyStart.hidden = !complete; });
    },

    /** A page of older messages, oldest first, put right above the message keyed `anchor` (the
     *  oldest of the current epoch shown) or at the top of the log. */
    olderMessages({ messages, anchor }) {
      const ref = (anchor && messageRows.get(anchor)) || el.logHead.nextElementSibling;
      // The day divider above `ref` heads the day, so the page goes above it.
      const divider = ref && ref.previousElementSibling;
      const refDivider = divider && divider.classList.contains('day') ? divider : null;
      const page = doc.createDocumentFragment();
      let day = '';
      let prev = null;
      for (const m of messages) {
        const when = parseTime(m.ts);
        if (when.toDateString() !== day) {
          day = when.toDateString();
          page.append(dayDivider(when));
          prev = null;
        }
        const li = messageItem(m, when, prev);
        li.classList.add('earlier');
        page.append(li);
        prev = { nick: m.nick, at: when };
      }
      keepingPlace(ref, () => {
        el.log.insertBefore(page, refDivider || ref || null);
        if (refDivider && refDivider.dataset.day === day) {
          // The page ends on the day the old top begins: one divider, and one group across.
          refDivider.remove();
          const info = ref.classList.contains('msg') && messageInfo.get(ref);
          if (info && continues(prev, info.nick, info.at)) ref.classList.add('cont');
        }
      });
      if (!ref) {
        // The log had no items: appending continues from the page.
        lastDay = day;
        lastMsg = prev;
      }
    },

    /** Drops the `count` oldest items (messages and notices; day dividers go along with their
     *  day), keeping what is on screen in place. */
    dropOldest({ count }) {
      let left = count;
      let node = el.logHead.nextElementSibling;
      const doomed = [];
      while (node && left > 0) {
        if (!node.classList.contains('day')) {
          doomed.push(node);
          left -= 1;
        }
        node = node.nextElementSibling;
      }
      let keep = node;
      while (keep && keep.classList.contains('day')) keep = keep.nextElementSibling;
      keepingPlace(keep, () => {
        for (const li of doomed) {
          forgetItem(li);
          li.remove();
        }
        // A divider whose day has no item left is followed by the next divider (or nothing).
        let first = el.logHead.nextElementSibling;
        while (first && first.classList.contains('day')) {
          const next = first.nextElementSibling;
          if (next && !next.classList.contains('day')) break;
          first.remove();
          first = next;
        }
        if (!first) {
          lastDay = '';
          lastMsg = null;
        }
        // The group's first message went: the next one shows the name and avatar again.
        if (keep && keep.classList.contains('cont') && !keep.previousElementSibling.classList.contains('msg')) {
          keep.classList.remove('cont');
        }
      });
    },

    notice({ text, kind }) {
      const li = doc.createElement('li');
      li.className = `notice notice-${kind}`;
      const span = doc.createElement('span');
      span.textContent = text;
      li.appendChild(span);
      appendItem(li, kind === 'warn');
    },

    message(m) {
      const when = parseTime(m.ts);
      maybeDayDivider(when);
      const li = messageItem(m, when, lastMsg);
      appendItem(li, m.mine);
      lastMsg = { nick: m.nick, at: when };
    },

    roster({ ops, count, more, stale, loading }) {
      for (const op of ops) {
        if (op.op === 'reset') {
          el.users.replaceChildren();
          userRows.clear();
        } else if (op.op === 'remove') {
          const row = userRows.get(op.key);
          if (row) row.remove();
          userRows.delete(op.key);
        } else if (op.op === 'add') {
          const old = userRows.get(op.key);
          if (old) old.remove();
          const row = userRow(op.nick, op.me);
          el.users.insertBefore(row, (op.before != null && userRows.get(op.before)) || null);
          userRows.set(op.key, row);
        }
      }
      el.userCount.textContent = count.toLocaleString();
      el.usersMore.hidden = more === 0 && !loading;
      el.usersMore.disabled = loading;
      el.usersMore.textContent = loading ? 'Loading...' : `and ${more.toLocaleString()} more`;
      el.usersStale.hidden = !stale;
      el.usersRefresh.disabled = loading;
    },

    me({ nick }) {
      el.meNick.textContent = nick || '';
      paintAvatar(el.meAvatar, nick || '?');
    },

    typing({ names }) {
      el.typing.textContent = typingText(names);
      el.typing.classList.toggle('visible', names.length > 0);
    },

    restoreMessage({ text }) {
      // Only into an empty box: never over something typed since.
      if (!el.messageInput.value) el.messageInput.value = text;
    },

    messageSent() {
      el.messageInput.value = '';
      el.messageInput.focus();
    },

    roomInputDone({ room }) {
      el.roomInput.blur();
      if (room != null) el.roomInput.value = room;
    },

    /** The client cannot run at all (no /config.json): say so where the person is looking. */
    fatal(text) {
      el.login.hidden = false;
      el.chat.hidden = true;
      setLoginError(text);
      el.loginSubmit.disabled = true;
    },
  };
}
