// Entry point of the browser client: loads /config.json, then wires the page's events, the
// WebSocket, timers, localStorage and the address bar to the session (session.js), and carries
// out the effects it returns; view.js draws. The only module that does anything when loaded.

import { readConfig } from './config.js';
import { roomFromHash, Session } from './session.js';
import { createView } from './view.js';

const NICK_KEY = 'chat.nick';

const $ = (id) => document.getElementById(id);
const view = createView(document);

let session = null; // created once /config.json is in
const pending = []; // events not handled yet: from before the session existed, or raised by an effect
let handling = false;
let ws = null;
const timers = new Map(); // timer name -> setTimeout id
let logTopSaid = null; // the last logTop sent from a scroll event

/** Hands an event to the session and carries out its effects; events raised meanwhile wait. */
function dispatch(event) {
  pending.push(event);
  run();
}

function run() {
  if (!session || handling) return;
  handling = true;
  try {
    while (pending.length) {
      const effects = session.handle({ ...pending.shift(), now: Date.now() });
      for (const effect of effects) perform(effect);
    }
  } finally {
    handling = false;
  }
}

function perform(effect) {
  switch (effect.type) {
    case 'connect': openSocket(effect.conn, effect.url); break;
    case 'disconnect': closeSocket(); break;
    case 'send':
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(effect.frame);
      break;
    case 'schedule': {
      clearTimeout(timers.get(effect.name));
      const { name } = effect;
      timers.set(name, setTimeout(() => {
        timers.delete(name);
        dispatch({ type: 'timer', name });
      }, effect.ms));
      break;
    }
    case 'cancel':
      clearTimeout(timers.get(effect.name));
      timers.delete(effect.name);
      break;
    case 'storeNick':
      try { localStorage.setItem(NICK_KEY, effect.nick); } catch (_) { /* private mode */ }
      break;
    case 'replaceHash': {
      const hash = encodeURIComponent(effect.room);
      if (location.hash.replace(/^#/, '') !== hash) history.replaceState(null, '', '#' + hash);
      break;
    }
    case 'navigate': location.hash = encodeURIComponent(effect.room); break;
    case 'measureLog': sayLogTop(true); break;
    case 'render': {
      const draw = view[effect.view];
      if (!draw) throw new Error(`no view for ${JSON.stringify(effect.view)}`);
      draw(effect);
      break;
    }
    default: throw new Error(`unknown effect ${JSON.stringify(effect.type)}`);
  }
}

/** Tells the session whether the top of the log is in view: on request (`always`), and from
 *  scroll events only when that changes, so scrolling costs no work in the session. */
function sayLogTop(always) {
  const near = view.logNearTop();
  if (!always && near === logTopSaid) return;
  logTopSaid = near;
  dispatch({ type: 'logTop', near });
}

/** Quietly: the session already knows this socket is gone, so its close must not report. */
function closeSocket() {
  if (!ws) return;
  const old = ws;
  ws = null;
  old.onopen = old.onmessage = old.onclose = old.onerror = null;
  try { old.close(1000); } catch (_) { /* already closed */ }
}

function openSocket(conn, url) {
  closeSocket();
  let socket;
  try {
    socket = new WebSocket(url);
  } catch (_) {
    dispatch({ type: 'connectFailed', conn });
    return;
  }
  ws = socket;
  socket.onopen = () => dispatch({ type: 'open', conn });
  socket.onmessage = (ev) => dispatch({ type: 'frame', conn, data: ev.data });
  socket.onclose = (ev) => {
    if (ws === socket) ws = null;
    dispatch({ type: 'close', conn, code: ev.code });
  };
  socket.onerror = () => { /* a close event follows */ };
}

// ---------------------------------------------------------------- page events

function onSubmit(id, event) {
  $(id).addEventListener('submit', (e) => {
    e.preventDefault();
    dispatch(event());
  });
}

onSubmit('login-form', () => ({ type: 'submitNick', nick: $('nick-input').value }));
onSubmit('composer', () => ({ type: 'submitMessage', text: $('message-input').value }));
onSubmit('room-form', () => ({ type: 'submitRoom', room: $('room-input').value }));
$('message-input').addEventListener('input', () => dispatch({ type: 'typed', text: $('message-input').value }));
$('login-cancel').addEventListener('click', () => dispatch({ type: 'cancelLogin' }));
$('rename').addEventListener('click', () => dispatch({ type: 'rename' }));
$('retry').addEventListener('click', () => dispatch({ type: 'retry' }));
$('users-more').addEventListener('click', () => dispatch({ type: 'moreUsers' }));
$('users-refresh').addEventListener('click', () => dispatch({ type: 'refreshUsers' }));
$('chat-error-close').addEventListener('click', () => view.clearChatError());
$('log').addEventListener('scroll', () => sayLogTop(false), { passive: true });
window.addEventListener('hashchange', () => dispatch({ type: 'hashchange', hash: location.hash }));
window.addEventListener('online', () => dispatch({ type: 'online' }));
window.addEventListener('offline', () => dispatch({ type: 'offline' }));

// ---------------------------------------------------------------- start

async function loadConfig() {
  let response;
  try {
    response = await fetch('/config.json', { cache: 'no-cache' });
  } catch (err) {
    throw new Error(`/config.json could not be fetched: ${err.message}`);
  }
  if (!response.ok) throw new Error(`/config.json answered HTTP ${response.status}`);
  let json;
  try {
    json = await response.json();
  } catch (_) {
    throw new Error('/config.json is not valid JSON');
  }
  return readConfig(json);
}

function start(limits) {
  let storedNick = '';
  try { storedNick = localStorage.getItem(NICK_KEY) || ''; } catch (_) { /* private mode */ }
  const seed = crypto.getRandomValues(new Uint32Array(1))[0];
  session = new Session({
    limits,
    wsBase: (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host,
    hash: location.hash,
    online: navigator.onLine !== false,
    seed,
  });
  // Whatever was typed or clicked while the config loaded is handled after the start.
  pending.unshift({ type: 'start', storedNick });
  run();
}

loadConfig().then(start, (err) => {
  // Without the config there is no default room, but a room named in the address is known.
  const room = roomFromHash(location.hash, '');
  if (room) view.roomName({ room, force: true });
  view.fatal(`The chat could not load its settings from the server (${err.message}). Please reload the page.`);
});

// Small read-only hook for tests and debugging.
window.chat = Object.freeze({
  get state() { return session ? session.phase : 'loading'; },
  get nick() { return session && session.nick; },
  get room() { return session && session.shownRoom; },
  get lastSeq() { return session && session.lastSeq; },
  get epoch() { return session && session.epoch; },
  get users() { return session ? session.roster.list() : []; },
  get userCount() { return session ? session.roster.count : 0; },
  get scrollback() {
    if (!session) return null;
    const { complete, request, supported, oldestSeq } = session.scrollback;
    return { complete, loading: !!request, supported, oldestSeq };
  },
});
