// Browser client of the chat server. Plain JavaScript, no build step.
// Every piece of text that comes from a user or the server is rendered with textContent.
'use strict';

(() => {
  const NICK_KEY = 'chat.nick';
  const DEFAULT_ROOM = 'general';
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 20000;
  const TYPING_SEND_EVERY_MS = 2000;
  const TYPING_SHOW_MS = 4000;
  const MAX_MESSAGE_BYTES = 4096;
  const MAX_LOG_ITEMS = 600;
  const NICK_CHARS_MAX = 32;
  const ROOM_CHARS_MAX = 64;

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'),
    statusText: $('status-text'),
    retry: $('retry'),
    roomName: $('room-name'),
    login: $('login'),
    loginForm: $('login-form'),
    loginTitle: $('login-title'),
    loginRoom: $('login-room'),
    loginError: $('login-error'),
    loginSubmit: $('login-submit'),
    loginCancel: $('login-cancel'),
    nickInput: $('nick-input'),
    chat: $('chat'),
    log: $('log'),
    typing: $('typing'),
    chatError: $('chat-error'),
    chatErrorText: $('chat-error-text'),
    chatErrorClose: $('chat-error-close'),
    composer: $('composer'),
    messageInput: $('message-input'),
    meNick: $('me-nick'),
    meAvatar: $('me-avatar'),
    rename: $('rename'),
    roomForm: $('room-form'),
    roomInput: $('room-input'),
    users: $('users'),
    userCount: $('user-count'),
  };

  // ---------------------------------------------------------------- state
  const st = {
    state: 'idle', // idle | connecting | connected | reconnecting | offline | need-nick
    ws: null,
    nick: null, // the nickname the server confirmed
    wantedNick: null, // the nickname we ask for
    room: roomFromHash(), // the room we want to be in
    shownRoom: null, // the room whose conversation the log shows
    inRoom: false,
    epoch: null, // epoch of shownRoom's seq numbers
    lastSeq: null, // last seq seen in shownRoom
    seen: new Set(), // "epoch:seq" keys already rendered
    users: new Map(), // lowercase nick -> nick
    attempt: 0,
    ghostRetries: 0,
    reconnectTimer: 0,
    countdownTimer: 0,
    reconnectAt: 0,
    pendingJoin: null, // {kind: 'connect'|'join', resume: bool, room}
    pendingRename: null, // the nick asked for with {"type":"nick"}
    disconnected: false, // lost the connection since the last welcome
    typingSentAt: 0,
    typers: new Map(), // nick -> timeout id
    lastSentText: '',
    lastDay: '',
    lastMsg: null, // {nick, at} of the message at the end of the log, for grouping
  };

  // ---------------------------------------------------------------- helpers
  function roomFromHash() {
    let raw = location.hash.replace(/^#\/?/, '');
    try { raw = decodeURIComponent(raw); } catch (_) { /* keep raw */ }
    raw = raw.trim();
    return raw || DEFAULT_ROOM;
  }

  function utf8Bytes(text) {
    return new TextEncoder().encode(text).length;
  }

  function checkNick(nick) {
    const chars = [...nick].length;
    if (chars === 0) return 'Please enter a nickname.';
    if (chars > NICK_CHARS_MAX) return `A nickname can have at most ${NICK_CHARS_MAX} characters.`;
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f-\u009f]/.test(nick)) return 'A nickname cannot contain control characters.';
    if (/^guest-/i.test(nick)) return 'Nicknames starting with "guest-" are reserved. Please pick another.';
    return null;
  }

  function checkRoom(room) {
    const chars = [...room].length;
    if (chars === 0) return 'Please enter a room name.';
    if (chars > ROOM_CHARS_MAX) return `A room name can have at most ${ROOM_CHARS_MAX} characters.`;
    if (!/^[\p{L}\p{N}._-]+$/u.test(room)) {
      return 'Room names can only use letters, numbers, "-", "_" and ".".';
    }
    return null;
  }

  function hueOf(nick) {
    let h = 0;
    for (const ch of nick.toLowerCase()) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }

  function initialOf(nick) {
    const first = [...(nick || '?').trim()][0] || '?';
    return first.toUpperCase();
  }

  function paintAvatar(node, nick) {
    node.textContent = initialOf(nick);
    node.style.setProperty('--hue', String(hueOf(nick || '')));
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

  function wsUrl(params) {
    return (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws?' + params.toString();
  }

  const ERROR_TEXT = {
    nick_taken: 'That nickname is already taken in this room. Please pick another.',
    rate_limited: 'You are sending messages too fast. Please wait a moment.',
    message_too_long: `That message is too long (the limit is ${MAX_MESSAGE_BYTES} bytes). Please shorten it.`,
    empty_message: 'You cannot send an empty message.',
    invalid_nick: 'That nickname is not allowed. Please pick another.',
    invalid_room: 'That room name is not valid. Room names can only use letters, numbers, "-", "_" and ".".',
    not_in_room: 'You are not in a room right now, so the message was not sent.',
    too_many_rooms: 'The server cannot open another room right now. Please try an existing room.',
    invalid_json: 'The server could not understand the last request. Please reload the page.',
    unknown_type: 'The server could not understand the last request. Please reload the page.',
    invalid_field: 'The server refused part of the last request. Please reload the page.',
  };

  function describeError(err) {
    const code = err && err.code;
    let text = ERROR_TEXT[code];
    if (!text) {
      text = 'The server reported a problem' + (err && err.message ? ': ' + err.message : '.');
    } else if (code === 'invalid_nick' && err.message) {
      text = `That nickname is not allowed (${err.message}). Please pick another.`;
    }
    return text;
  }

  function describeClose(code) {
    switch (code) {
      case 1001: return 'The server is restarting.';
      case 1008: return 'The server closed the connection because too many messages were sent.';
      case 1009: return 'The server closed the connection because a message was too big.';
      case 1011: return 'The server ran into an internal problem.';
      case 4000: return 'You were disconnected after being idle for too long.';
      case 4001: return 'Your connection was too slow to keep up, so the server dropped it.';
      case 4002: return 'The connection timed out.';
      case 4003: return 'You were disconnected by an operator.';
      default: return 'The connection to the server was lost.';
    }
  }

  function leaveText(ev) {
    switch (ev.reason) {
      case 'kicked': return `${ev.nick} was removed by an operator`;
      case 'timeout': return `${ev.nick} timed out`;
      case 'evicted': return `${ev.nick} lost the connection`;
      case 'switched': return `${ev.nick} moved to another room`;
      default: return `${ev.nick} left`;
    }
  }

  // ---------------------------------------------------------------- views
  function setState(state) {
    st.state = state;
    el.status.dataset.state = state;
    el.chat.classList.toggle('is-disconnected', state !== 'connected');
    el.retry.hidden = !(state === 'reconnecting' || state === 'offline');
    if (state !== 'reconnecting') stopCountdown();
    let text;
    switch (state) {
      case 'connecting': text = 'Connecting...'; break;
      case 'connected': text = 'Connected'; break;
      case 'reconnecting': text = countdownText(); break;
      case 'offline': text = 'Offline'; break;
      case 'need-nick': text = 'Choose a nickname'; break;
      default: text = 'Not joined';
    }
    el.statusText.textContent = text;
    updateComposer();
  }

  function countdownText() {
    const secs = Math.max(0, Math.ceil((st.reconnectAt - Date.now()) / 1000));
    return secs > 0 ? `Reconnecting in ${secs} s...` : 'Reconnecting...';
  }

  function stopCountdown() {
    if (st.countdownTimer) clearInterval(st.countdownTimer);
    st.countdownTimer = 0;
  }

  function updateComposer() {
    const ready = st.state === 'connected' && st.inRoom;
    el.composer.classList.toggle('is-offline', !ready);
    el.messageInput.placeholder = ready ? `Message #${st.shownRoom}` : 'Waiting for the connection...';
  }

  function showRoomName(room, force) {
    el.roomName.textContent = room;
    el.loginRoom.textContent = room;
    document.title = `#${room} - Chat`;
    if (force || document.activeElement !== el.roomInput) el.roomInput.value = room;
  }

  function showLogin(errorText, opts = {}) {
    el.login.hidden = false;
    el.chat.hidden = true;
    el.loginTitle.textContent = opts.rename ? 'Change your name' : 'Join the conversation';
    el.loginSubmit.textContent = opts.rename ? 'Save' : 'Join chat';
    el.loginCancel.hidden = !opts.cancelable;
    setLoginError(errorText);
    if (opts.nick != null) el.nickInput.value = opts.nick;
    el.loginSubmit.disabled = false;
    el.nickInput.focus();
    el.nickInput.select();
  }

  function setLoginError(text) {
    el.loginError.textContent = text || '';
    el.loginError.hidden = !text;
    el.nickInput.setAttribute('aria-invalid', text ? 'true' : 'false');
  }

  function showChat() {
    const wasHidden = el.chat.hidden;
    el.login.hidden = true;
    el.chat.hidden = false;
    setLoginError('');
    if (wasHidden) {
      el.messageInput.focus();
      scrollToBottom(true);
    }
  }

  function showChatError(text) {
    el.chatErrorText.textContent = text;
    el.chatError.hidden = false;
  }

  function clearChatError() {
    el.chatError.hidden = true;
    el.chatErrorText.textContent = '';
  }

  // ---------------------------------------------------------------- the log
  function nearBottom() {
    return el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 120;
  }

  function scrollToBottom(force) {
    if (force || nearBottom()) el.log.scrollTop = el.log.scrollHeight;
  }

  function appendItem(li, forceScroll) {
    if (!li.classList.contains('msg')) st.lastMsg = null;
    const stick = forceScroll || nearBottom();
    el.log.appendChild(li);
    while (el.log.childElementCount > MAX_LOG_ITEMS) el.log.firstElementChild.remove();
    if (stick) el.log.scrollTop = el.log.scrollHeight;
  }

  function clearLog() {
    el.log.replaceChildren();
    st.seen.clear();
    st.lastDay = '';
    st.lastMsg = null;
  }

  function maybeDayDivider(d) {
    const day = d.toDateString();
    if (day === st.lastDay) return;
    st.lastDay = day;
    const li = document.createElement('li');
    li.className = 'day';
    li.setAttribute('aria-hidden', 'true');
    li.textContent = formatDay(d);
    appendItem(li);
  }

  function addNotice(text, kind = 'info') {
    const li = document.createElement('li');
    li.className = `notice notice-${kind}`;
    const span = document.createElement('span');
    span.textContent = text;
    li.appendChild(span);
    appendItem(li, kind === 'warn');
  }

  function addMessage(m) {
    if (typeof m.seq === 'number' && st.epoch != null) {
      const key = `${st.epoch}:${m.seq}`;
      if (st.seen.has(key)) return;
      st.seen.add(key);
      if (st.lastSeq == null || m.seq > st.lastSeq) st.lastSeq = m.seq;
    }
    const nick = String(m.nick ?? '');
    const mine = st.nick != null && nick === st.nick;
    const when = parseTime(m.ts);
    maybeDayDivider(when);

    const li = document.createElement('li');
    li.className = mine ? 'msg mine' : 'msg';
    // Consecutive messages of one person within 5 minutes form a group (avatar and name shown once).
    const prev = st.lastMsg;
    if (prev && prev.nick === nick && when - prev.at >= 0 && when - prev.at < 5 * 60 * 1000) {
      li.classList.add('cont');
    }
    if (typeof m.seq === 'number') li.dataset.seq = String(m.seq);

    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    paintAvatar(avatar, nick);

    const bubble = document.createElement('div');
    bubble.className = 'bubble';
    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('span');
    who.className = 'nick';
    who.textContent = nick;
    who.style.setProperty('--hue', String(hueOf(nick)));
    const time = document.createElement('time');
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    time.textContent = formatTime(when);
    meta.append(who, time);
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = String(m.text ?? '');
    bubble.append(meta, text);
    li.append(avatar, bubble);
    appendItem(li, mine);
    st.lastMsg = { nick, at: when };
  }

  // ---------------------------------------------------------------- people
  function renderUsers() {
    const list = [...st.users.values()].sort((a, b) => {
      if (a === st.nick) return -1;
      if (b === st.nick) return 1;
      return a.localeCompare(b, undefined, { sensitivity: 'base' });
    });
    const items = list.map((nick) => {
      const li = document.createElement('li');
      li.className = nick === st.nick ? 'user me-user' : 'user';
      const avatar = document.createElement('span');
      avatar.className = 'avatar avatar-small';
      avatar.setAttribute('aria-hidden', 'true');
      paintAvatar(avatar, nick);
      const name = document.createElement('span');
      name.className = 'user-name';
      name.textContent = nick;
      li.append(avatar, name);
      if (nick === st.nick) {
        const you = document.createElement('span');
        you.className = 'you';
        you.textContent = '(you)';
        li.append(you);
      }
      return li;
    });
    el.users.replaceChildren(...items);
    el.userCount.textContent = String(list.length);
  }

  function addUser(nick) {
    st.users.set(nick.toLowerCase(), nick);
  }

  function removeUser(nick) {
    st.users.delete(nick.toLowerCase());
  }

  function showMe() {
    el.meNick.textContent = st.nick || '';
    paintAvatar(el.meAvatar, st.nick || '?');
  }

  // ---------------------------------------------------------------- typing
  function renderTyping() {
    const names = [...st.typers.keys()];
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing...`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing...`;
    else if (names.length > 2) text = 'Several people are typing...';
    el.typing.textContent = text;
    el.typing.classList.toggle('visible', names.length > 0);
  }

  function someoneTyping(nick) {
    if (!nick || nick === st.nick) return;
    clearTimeout(st.typers.get(nick));
    st.typers.set(nick, setTimeout(() => {
      st.typers.delete(nick);
      renderTyping();
    }, TYPING_SHOW_MS));
    renderTyping();
  }

  function stoppedTyping(nick) {
    if (!st.typers.has(nick)) return;
    clearTimeout(st.typers.get(nick));
    st.typers.delete(nick);
    renderTyping();
  }

  function clearTypers() {
    for (const t of st.typers.values()) clearTimeout(t);
    st.typers.clear();
    renderTyping();
  }

  // ---------------------------------------------------------------- connection
  function send(obj) {
    if (!st.ws || st.ws.readyState !== WebSocket.OPEN) return false;
    st.ws.send(JSON.stringify(obj));
    return true;
  }

  // Resume with since/epoch only when the log already shows this room.
  function resumePoint(room) {
    if (st.shownRoom === room && st.epoch != null && st.lastSeq != null) {
      return { since: st.lastSeq, epoch: st.epoch };
    }
    return null;
  }

  function connect() {
    clearReconnectTimer();
    if (st.ws) {
      const old = st.ws;
      st.ws = null;
      old.onopen = old.onmessage = old.onclose = old.onerror = null;
      try { old.close(1000); } catch (_) { /* ignore */ }
    }
    const params = new URLSearchParams();
    params.set('nick', st.wantedNick);
    params.set('room', st.room);
    const resume = resumePoint(st.room);
    if (resume) {
      params.set('since', String(resume.since));
      params.set('epoch', resume.epoch);
    }
    st.pendingJoin = { kind: 'connect', resume: !!resume, room: st.room, auto: st.disconnected };
    st.inRoom = false;
    setState('connecting');
    let ws;
    try {
      ws = new WebSocket(wsUrl(params));
    } catch (_) {
      scheduleReconnect();
      return;
    }
    st.ws = ws;
    ws.onmessage = (ev) => {
      if (st.ws === ws) onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (st.ws === ws) onClose(ev);
    };
    ws.onerror = () => { /* a close event follows */ };
  }

  function onClose(ev) {
    st.ws = null;
    st.inRoom = false;
    st.pendingRename = null;
    st.typingSentAt = 0;
    clearTypers();
    if (st.state === 'need-nick') {
      // Waiting for the person to pick another nickname: reconnect when they do.
      st.pendingJoin = null;
      return;
    }
    if (st.shownRoom && !st.disconnected) {
      addNotice(`${describeClose(ev.code)} Reconnecting...`, 'warn');
    }
    if (!st.shownRoom && !el.login.hidden) {
      setLoginError('Could not reach the chat server. Trying again...');
    }
    st.disconnected = true;
    scheduleReconnect();
  }

  function clearReconnectTimer() {
    if (st.reconnectTimer) clearTimeout(st.reconnectTimer);
    st.reconnectTimer = 0;
    stopCountdown();
  }

  function scheduleReconnect() {
    clearReconnectTimer();
    if (navigator.onLine === false) {
      setState('offline');
      return;
    }
    // Exponential backoff with full jitter: random(0, min(cap, base * 2^attempt)).
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(st.attempt, 16));
    const delay = Math.random() * ceiling;
    st.attempt += 1;
    st.reconnectAt = Date.now() + delay;
    st.reconnectTimer = setTimeout(() => {
      st.reconnectTimer = 0;
      connect();
    }, delay);
    setState('reconnecting');
    st.countdownTimer = setInterval(() => {
      if (st.state === 'reconnecting') el.statusText.textContent = countdownText();
    }, 250);
  }

  function reconnectNow() {
    if (st.state === 'reconnecting' || st.state === 'offline') connect();
  }

  function onFrame(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    const forShownRoom = !msg.room || msg.room === st.shownRoom;
    switch (msg.type) {
      case 'welcome':
        onWelcome(msg);
        break;
      case 'message':
        if (!forShownRoom) return;
        stoppedTyping(msg.nick);
        addMessage(msg);
        if (msg.nick === st.nick) {
          clearChatError();
          st.lastSentText = '';
        }
        break;
      case 'join':
        if (!forShownRoom || !msg.nick) return;
        addUser(msg.nick);
        renderUsers();
        addNotice(`${msg.nick} joined`);
        break;
      case 'leave':
        if (!forShownRoom || !msg.nick) return;
        removeUser(msg.nick);
        stoppedTyping(msg.nick);
        renderUsers();
        addNotice(leaveText(msg));
        break;
      case 'nick':
        if (!forShownRoom) return;
        onNick(msg);
        break;
      case 'typing':
        if (forShownRoom) someoneTyping(msg.nick);
        break;
      case 'error':
        onServerError(msg);
        break;
      default:
        break;
    }
  }

  function onWelcome(w) {
    const pending = st.pendingJoin;
    const resumed = !!(pending && pending.resume) && st.shownRoom === w.room;
    const epochChanged = st.epoch != null && w.epoch !== st.epoch;
    if (st.shownRoom !== w.room) {
      clearLog();
      st.shownRoom = w.room;
      st.epoch = null;
      st.lastSeq = null;
    }
    st.nick = w.nick;
    st.wantedNick = w.nick;
    st.room = w.room;
    st.inRoom = true;
    st.pendingJoin = null;
    st.pendingRename = null;
    st.attempt = 0;
    st.ghostRetries = 0;
    try { localStorage.setItem(NICK_KEY, w.nick); } catch (_) { /* private mode */ }

    if (resumed && w.recovered === false) {
      addNotice(epochChanged
        ? 'Reconnected, but some earlier messages could not be recovered (the server restarted).'
        : 'Reconnected, but some earlier messages could not be recovered (too much was missed).', 'warn');
    } else if (st.disconnected && resumed) {
      addNotice('Reconnected.');
    }
    st.disconnected = false;

    if (epochChanged) st.lastSeq = null;
    st.epoch = w.epoch;
    for (const m of Array.isArray(w.history) ? w.history : []) addMessage(m);
    if (typeof w.seq === 'number') st.lastSeq = w.seq;

    st.users.clear();
    for (const u of Array.isArray(w.users) ? w.users : []) addUser(String(u));
    addUser(w.nick);
    clearTypers();
    renderUsers();
    showMe();
    showRoomName(w.room, true);
    if (location.hash.replace(/^#/, '') !== encodeURIComponent(w.room)) {
      history.replaceState(null, '', '#' + encodeURIComponent(w.room));
    }
    clearChatError();
    setState('connected');
    showChat();
  }

  function onNick(ev) {
    if (!ev.old || !ev.nick) return;
    removeUser(ev.old);
    addUser(ev.nick);
    stoppedTyping(ev.old);
    if (ev.old === st.nick) {
      st.nick = ev.nick;
      st.wantedNick = ev.nick;
      st.pendingRename = null;
      try { localStorage.setItem(NICK_KEY, ev.nick); } catch (_) { /* private mode */ }
      showMe();
      addNotice(`You are now known as ${ev.nick}`);
      if (!el.login.hidden) showChat();
    } else {
      addNotice(`${ev.old} is now known as ${ev.nick}`);
    }
    renderUsers();
  }

  function onServerError(err) {
    const code = err.code;
    const text = describeError(err);
    const nickProblem = code === 'nick_taken' || code === 'invalid_nick';

    if (st.pendingJoin) {
      const pending = st.pendingJoin;
      if (code === 'nick_taken' && pending.auto && st.ghostRetries < 4) {
        // After a network loss the server may still hold our old connection for a while:
        // keep retrying quietly before asking for another name.
        st.ghostRetries += 1;
        st.pendingJoin = null;
        const ws = st.ws;
        st.ws = null;
        if (ws) {
          ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
          try { ws.close(1000); } catch (_) { /* ignore */ }
        }
        scheduleReconnect();
        return;
      }
      if (nickProblem) {
        st.pendingJoin = null;
        if (pending.kind === 'connect') st.inRoom = false;
        // Back to the nickname form; the connection stays open for a join with another name.
        setState(st.inRoom ? 'connected' : 'need-nick');
        st.attempt = 0;
        showLogin(text, { nick: st.wantedNick, cancelable: st.inRoom });
        return;
      }
      if (code === 'invalid_room' || code === 'too_many_rooms') {
        st.pendingJoin = null;
        if (st.inRoom && st.shownRoom) {
          // A switch failed: stay where we are.
          st.room = st.shownRoom;
          history.replaceState(null, '', '#' + encodeURIComponent(st.room));
          showRoomName(st.room);
          showChatError(text);
        } else {
          st.room = DEFAULT_ROOM;
          history.replaceState(null, '', '#' + DEFAULT_ROOM);
          showRoomName(st.room);
          setState('need-nick');
          showLogin(`${text} You will join #${DEFAULT_ROOM} instead.`, { nick: st.wantedNick });
        }
        return;
      }
    }

    if (st.pendingRename && nickProblem) {
      st.pendingRename = null;
      showLogin(text, { rename: true, cancelable: true });
      return;
    }

    if ((code === 'rate_limited' || code === 'message_too_long') && st.lastSentText && !el.messageInput.value) {
      // Give the text back so nothing typed is lost.
      el.messageInput.value = st.lastSentText;
    }
    st.lastSentText = '';
    if (code === 'not_in_room') st.inRoom = false;
    showChatError(text);
  }

  // Join (or rejoin) st.room as st.wantedNick, over the open socket when there is one.
  function join() {
    if (st.ws && st.ws.readyState === WebSocket.OPEN) {
      const resume = resumePoint(st.room);
      const msg = { type: 'join', room: st.room, nick: st.wantedNick };
      if (resume) {
        msg.since = resume.since;
        msg.epoch = resume.epoch;
      }
      st.pendingJoin = { kind: 'join', resume: !!resume, room: st.room };
      send(msg);
      if (!st.inRoom) setState('connecting');
    } else {
      st.attempt = 0;
      connect();
    }
  }

  function switchRoom(room) {
    st.room = room;
    showRoomName(room);
    clearChatError();
    if (!st.wantedNick) return; // still on the nickname form
    if (st.state === 'need-nick' && !st.inRoom) return;
    join();
  }

  // ---------------------------------------------------------------- UI events
  el.loginForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const nick = el.nickInput.value.trim();
    const problem = checkNick(nick);
    if (problem) {
      setLoginError(problem);
      el.nickInput.focus();
      return;
    }
    setLoginError('');
    try { localStorage.setItem(NICK_KEY, nick); } catch (_) { /* private mode */ }
    const renaming = st.inRoom && st.ws && st.ws.readyState === WebSocket.OPEN && st.state === 'connected';
    if (renaming) {
      if (nick === st.nick) {
        showChat();
        return;
      }
      st.pendingRename = nick;
      send({ type: 'nick', nick });
      el.loginSubmit.disabled = true;
      setTimeout(() => { el.loginSubmit.disabled = false; }, 1500);
      return;
    }
    st.wantedNick = nick;
    join();
  });

  el.loginCancel.addEventListener('click', () => {
    if (st.inRoom) {
      st.pendingRename = null;
      st.room = st.shownRoom;
      showRoomName(st.room);
      showChat();
    }
  });

  el.rename.addEventListener('click', () => {
    showLogin('', { rename: true, cancelable: true, nick: st.nick || '' });
  });

  el.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = el.messageInput.value;
    if (!text.trim()) return;
    if (utf8Bytes(text.trim()) > MAX_MESSAGE_BYTES) {
      showChatError(ERROR_TEXT.message_too_long);
      return;
    }
    if (st.state !== 'connected' || !st.inRoom) {
      showChatError('You are not connected right now. Your message was not sent; it is still in the box.');
      return;
    }
    if (!send({ type: 'message', text })) {
      showChatError('You are not connected right now. Your message was not sent; it is still in the box.');
      return;
    }
    st.lastSentText = text;
    st.typingSentAt = 0;
    el.messageInput.value = '';
    el.messageInput.focus();
  });

  el.messageInput.addEventListener('input', () => {
    if (!el.messageInput.value.trim() || st.state !== 'connected' || !st.inRoom) return;
    const now = Date.now();
    if (now - st.typingSentAt >= TYPING_SEND_EVERY_MS) {
      st.typingSentAt = now;
      send({ type: 'typing' });
    }
  });

  el.chatErrorClose.addEventListener('click', clearChatError);

  el.roomForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const room = el.roomInput.value.trim().replace(/^#/, '');
    const problem = checkRoom(room);
    if (problem) {
      showChatError(problem);
      return;
    }
    el.roomInput.blur();
    if (room === st.shownRoom && st.inRoom) {
      el.roomInput.value = room;
      return;
    }
    location.hash = encodeURIComponent(room); // hashchange does the switch
  });

  window.addEventListener('hashchange', () => {
    const room = roomFromHash();
    if (room === st.room && (st.inRoom || st.pendingJoin)) return;
    const problem = checkRoom(room);
    if (problem) {
      showChatError(problem);
      history.replaceState(null, '', '#' + encodeURIComponent(st.room));
      return;
    }
    switchRoom(room);
  });

  el.retry.addEventListener('click', reconnectNow);
  window.addEventListener('online', reconnectNow);
  window.addEventListener('offline', () => {
    if (st.state === 'reconnecting') {
      clearReconnectTimer();
      setState('offline');
    }
  });

  // ---------------------------------------------------------------- start
  let remembered = '';
  try { remembered = localStorage.getItem(NICK_KEY) || ''; } catch (_) { /* private mode */ }
  el.nickInput.value = remembered;
  showRoomName(st.room);
  setState('idle');
  el.login.hidden = false;
  el.chat.hidden = true;
  el.nickInput.focus();

  // Small read-only hook for tests and debugging.
  window.chat = Object.freeze({
    get state() { return st.state; },
    get nick() { return st.nick; },
    get room() { return st.shownRoom; },
    get lastSeq() { return st.lastSeq; },
    get epoch() { return st.epoch; },
    get users() { return [...st.users.values()]; },
  });
})();
