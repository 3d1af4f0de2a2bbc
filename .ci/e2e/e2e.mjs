// End-to-end test of the browser client against the real chat server, in headless Chromium.
//
//   node --test e2e.mjs            (or: bash .ci/e2e/run.sh from anywhere)
//
// Environment (all optional):
//   CHAT_SERVER_BIN   server binary (default: <repo>/target/release/chat-server)
//   CHROMIUM_PATH     browser (default: /usr/bin/chromium)
//   E2E_STATIC_DIR    pass --static-dir to the server (serve static/ from disk instead of the embedded copy)
//   E2E_OUT           where screenshots and the server log go (default: <repo>/.ci/out)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const OUT = process.env.E2E_OUT || path.join(ROOT, '.ci', 'out');
const SERVER_BIN = process.env.CHAT_SERVER_BIN || path.join(ROOT, 'target', 'release', 'chat-server');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TOKEN = crypto.randomBytes(18).toString('hex');
const RUN = crypto.randomBytes(3).toString('hex'); // keeps texts unique per run
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const RECOVERY_NOTICE = /could not be recovered/i;
const RECOVERED_NOTICE = /^Reconnected\.$/;
const TEXT_BYTES_MAX = 300; // --max-text-bytes, not the default: the client must learn it from /config.json
const NICK_TAKEN_TEXT = 'That nickname is already taken in this room. Please pick another.';

let port;
let base;
let server; // { proc, exited }
let largeServer = null; // the second server, whose rooms are large past 3 members
let browser;
let context;
const pages = {}; // name -> page
const pageErrors = [];
const ALICE = `alice_${RUN}`;
const BOB = `bob_${RUN}`;

// ------------------------------------------------------------------ helpers
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls fn until it returns a truthy value (and does not throw); fails with what it last saw. */
async function eventually(fn, { timeout = 10000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(interval);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port: p } = srv.address();
      srv.close(() => resolve(p));
    });
  });
}

/** Starts the server binary on 127.0.0.1:`p` with `flags`, logging to OUT/`logName`, and waits
 *  until it answers; returns {proc, exited}. */
async function launchServer(p, flags, logName) {
  const args = ['--addr', `127.0.0.1:${p}`, ...flags];
  if (process.env.E2E_STATIC_DIR) args.push('--static-dir', process.env.E2E_STATIC_DIR);
  const log = fs.createWriteStream(path.join(OUT, logName), { flags: 'a' });
  log.write(`\n=== ${new Date().toISOString()} starting ${SERVER_BIN} ${args.join(' ').replace(TOKEN, '<token>')}\n`);
  const proc = spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  proc.stdout.pipe(log, { end: false });
  proc.stderr.pipe(log, { end: false });
  const exited = once(proc, 'exit');
  let early = null;
  exited.then(([code, signal]) => { early = `server exited early (code ${code}, signal ${signal})`; });
  const started = { proc, exited };
  await eventually(async () => {
    if (early) throw new Error(`${early}; see .ci/out/${logName}`);
    const res = await fetch(`http://127.0.0.1:${p}/status`);
    return res.ok;
  }, { timeout: 30000, interval: 100, what: `GET http://127.0.0.1:${p}/status` }).catch((err) => {
    proc.kill('SIGKILL');
    if (early) throw new Error(`${early}; see .ci/out/${logName}`);
    throw err;
  });
  return started;
}

/** The suite's message store: fresh for each run, kept across the restart test's restart. */
const DATA_DIR = path.join(OUT, 'e2e-data');
fs.rmSync(DATA_DIR, { recursive: true, force: true });

async function startServer() {
  server = await launchServer(port, ['--admin-token', TOKEN, '--max-text-bytes', String(TEXT_BYTES_MAX), '--data-dir', DATA_DIR], 'server.log');
}

/** Stops a server from launchServer (SIGKILL if it takes over 10 s). */
async function stopProcess({ proc, exited }, signal = 'SIGTERM') {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
  await exited;
  clearTimeout(timer);
}

async function stopServer(signal = 'SIGTERM') {
  if (!server) return;
  const stopping = server;
  server = null;
  await stopProcess(stopping, signal);
}

/** Reports every Content-Security-Policy violation of the page as a console error (which
 *  watchPage counts): the client must work under the server's CSP without tripping it. */
function reportCspViolations() {
  document.addEventListener('securitypolicyviolation', (e) => {
    console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
  });
}

/** Records the page's script errors, console errors and CSP violations in pageErrors. Await it
 *  before the first goto (the CSP listener is an init script). */
async function watchPage(name, page) {
  await page.addInitScript(reportCspViolations);
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/WebSocket connection|ERR_CONNECTION_REFUSED|Failed to load resource/.test(msg.text())) {
      pageErrors.push(`${name} console: ${msg.text()}`);
    }
  });
}

async function openTab(name, ctx = context, room = 'general') {
  const page = await ctx.newPage();
  await watchPage(name, page);
  await page.goto(`${base}/#${room}`);
  pages[name] = page;
  return page;
}

async function statusText(page) {
  return (await page.locator('#status').innerText()).trim();
}

async function waitConnected(page, timeout = 15000) {
  await eventually(async () => (await statusText(page)) === 'Connected', { timeout, what: 'status "Connected"' });
}

/** Fills the nickname form and waits for the chat (or returns right after submitting). */
async function signIn(page, nick, { expectChat = true } = {}) {
  const input = page.getByLabel('Nickname');
  await input.waitFor({ state: 'visible' });
  await input.fill(nick);
  await input.press('Enter');
  if (!expectChat) return;
  await page.getByLabel('Message').waitFor({ state: 'visible', timeout: 15000 });
  await waitConnected(page);
}

async function sendMessage(page, text) {
  const input = page.getByLabel('Message');
  await input.fill(text);
  await input.press('Enter');
}

function log(page) {
  return page.getByRole('log');
}

/** How many times the exact message text is rendered in the conversation. */
async function countMessage(page, text) {
  return log(page).getByText(text, { exact: true }).count();
}

async function waitForMessage(page, text, timeout = 10000) {
  await eventually(async () => (await countMessage(page, text)) >= 1, { timeout, what: `message ${JSON.stringify(text)}` });
}

async function onlineUsers(page) {
  const names = await page.locator('#users .user-name').allInnerTexts();
  return names.map((t) => t.trim());
}

async function kick(room, nick, token = TOKEN) {
  const url = `${base}/admin/kick?room=${encodeURIComponent(room)}&nick=${encodeURIComponent(nick)}`;
  return fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
}

// ------------------------------------------------------------------ setup
before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  fs.rmSync(path.join(OUT, 'server.log'), { force: true });
  fs.rmSync(path.join(OUT, 'server-large-rooms.log'), { force: true });
  assert.ok(fs.existsSync(SERVER_BIN), `server binary missing: ${SERVER_BIN} (cargo build --release -p chat-server)`);
  assert.ok(fs.existsSync(CHROMIUM), `chromium missing: ${CHROMIUM} (apt-get install chromium)`);
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await startServer();
  // launch() runs Chromium with a fresh temporary user-data-dir; each context is a clean profile.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
});

after(async () => {
  try {
    if (browser) await browser.close();
  } catch (_) { /* already gone */ }
  await stopServer();
  if (largeServer) await stopProcess(largeServer);
});

process.on('exit', () => {
  for (const running of [server, largeServer]) {
    if (running && running.proc.exitCode === null) running.proc.kill('SIGKILL');
  }
});

// ------------------------------------------------------------------ tests
test('the page is served and offers a nickname form', async () => {
  const files = [['/', 'text/html'], ['/style.css', 'text/css'], ['/config.json', 'application/json']];
  for (const module of ['main', 'session', 'protocol', 'config', 'view', 'roster', 'scrollback']) files.push([`/${module}.js`, 'javascript']);
  for (const [url, type] of files) {
    const res = await fetch(base + url);
    assert.equal(res.status, 200, `GET ${url}`);
    assert.match(res.headers.get('content-type') || '', new RegExp(type), `content-type of ${url}`);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `nosniff on ${url}`);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer', `referrer policy of ${url}`);
    const csp = res.headers.get('content-security-policy') || '';
    for (const directive of ["default-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) {
      assert.ok(csp.includes(directive), `${directive} in the CSP of ${url}: ${csp}`);
    }
  }
  const a = await openTab('alice');
  await a.getByLabel('Nickname').waitFor({ state: 'visible' });
  await eventually(async () => (await a.locator('#login-room').innerText()) === 'general', { what: 'the room on the form' });
  await a.screenshot({ path: path.join(OUT, 'desktop-login.png'), animations: 'disabled' });
});

test('every close code and leave reason the server lists in /config.json has a text in protocol.js', async () => {
  const { missing, extra, listed } = await pages.alice.evaluate(async () => {
    const protocol = await import('/protocol.js');
    const config = await (await fetch('/config.json')).json();
    const has = (texts, key) => Object.prototype.hasOwnProperty.call(texts, key);
    const codes = config.close_codes.map(String);
    return {
      listed: config.close_codes.length + config.leave_reasons.length,
      missing: [
        ...codes.filter((code) => !has(protocol.CLOSE_TEXTS, code)).map((code) => `close code ${code}`),
        ...config.leave_reasons.filter((r) => !has(protocol.LEAVE_TEXTS, r)).map((r) => `leave reason ${r}`),
      ],
      extra: [
        ...Object.keys(protocol.CLOSE_TEXTS).filter((code) => !codes.includes(code)).map((code) => `close code ${code}`),
        ...Object.keys(protocol.LEAVE_TEXTS).filter((r) => !config.leave_reasons.includes(r)).map((r) => `leave reason ${r}`),
      ],
    };
  });
  assert.ok(listed >= 10, `/config.json lists the codes and reasons (${listed})`);
  assert.deepEqual(missing, [], 'sent by the server, but protocol.js has no text');
  assert.deepEqual(extra, [], 'texts in protocol.js for something the server never sends');
});

test('without /config.json the page says it cannot start, instead of guessing limits', { timeout: 30000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    const page = await ctx.newPage();
    page.on('pageerror', (err) => pageErrors.push(`no-config: ${err.message}`));
    await page.route('**/config.json', (route) => route.fulfill({ status: 500, body: 'boom' }));
    await page.goto(`${base}/#general`);
    const error = page.locator('#login-error');
    await error.waitFor({ state: 'visible', timeout: 10000 });
    assert.match(await error.innerText(), /could not load its settings from the server \(\/config\.json answered HTTP 500\)\. Please reload the page\./);
    assert.ok(await page.locator('#login-submit').isDisabled(), 'nothing to submit to');
    await page.screenshot({ path: path.join(OUT, 'desktop-no-config.png'), animations: 'disabled' });
  } finally {
    await ctx.close();
  }
});

test('two tabs: a message typed in one appears in the other with the nickname', { timeout: 60000 }, async () => {
  const a = pages.alice;
  await signIn(a, ALICE);
  const b = await openTab('bob');
  await signIn(b, BOB);

  const text = `Hello from alice ${RUN}`;
  await sendMessage(a, text);
  await waitForMessage(b, text);
  const row = log(b).locator('li').filter({ hasText: text });
  assert.equal(await row.count(), 1);
  assert.match(await row.innerText(), new RegExp(ALICE), 'the message shows the sender nickname');
  assert.match(await row.innerText(), /\d{1,2}[:.]\d{2}/, 'the message shows a time');
  // The sender sees its own message (the server's acknowledgement), marked as its own.
  await waitForMessage(a, text);
  const own = log(a).locator('li').filter({ hasText: text });
  assert.match((await own.getAttribute('class')) || '', /\bmine\b/, 'own message is visually distinguished');
  assert.doesNotMatch((await row.getAttribute('class')) || '', /\bmine\b/);

  const reply = `Hi alice, bob here ${RUN}`;
  await sendMessage(b, reply);
  await waitForMessage(a, reply);
});

test('presence: both nicknames are listed in each tab, joins are announced', async () => {
  for (const name of ['alice', 'bob']) {
    await eventually(async () => {
      const users = await onlineUsers(pages[name]);
      return users.includes(ALICE) && users.includes(BOB) && users.length === 2;
    }, { what: `both users listed in ${name}'s tab` });
  }
  await eventually(async () => (await log(pages.alice).getByText(`${BOB} joined`).count()) === 1, { what: 'join notice' });
});

test('a message over the server\'s --max-text-bytes is refused in the page and kept in the box', async () => {
  const a = pages.alice;
  const long = 'x'.repeat(TEXT_BYTES_MAX + 1);
  await sendMessage(a, long);
  await a.getByText(`That message is too long (the limit is ${TEXT_BYTES_MAX} bytes). Please shorten it.`).waitFor({ state: 'visible' });
  assert.equal(await a.getByLabel('Message').inputValue(), long, 'nothing typed is lost');
  assert.equal(await countMessage(pages.bob, long), 0);
  await a.locator('#chat-error-close').click();
  const fits = 'This one is exactly at the limit, so it goes through. '.repeat(6).slice(0, TEXT_BYTES_MAX - 1) + '!';
  await sendMessage(a, fits);
  await waitForMessage(pages.bob, fits);
});

test('typing hint appears in the other tab and goes away', { timeout: 30000 }, async () => {
  const a = pages.alice;
  const b = pages.bob;
  await a.getByLabel('Message').pressSequentially('typing something', { delay: 20 });
  await eventually(async () => b.getByText(`${ALICE} is typing...`).isVisible(), { what: 'typing hint' });
  await eventually(async () => !(await b.getByText(`${ALICE} is typing...`).isVisible()), { timeout: 8000, what: 'typing hint to go away' });
  await a.getByLabel('Message').fill('');
});

test('HTML in a message is shown as text and never executed', { timeout: 30000 }, async () => {
  const a = pages.alice;
  const b = pages.bob;
  const payload = '<img src=x onerror="window.__xss=1">';
  await sendMessage(a, payload);
  for (const page of [a, b]) {
    await waitForMessage(page, payload);
    assert.equal(await log(page).locator('img').count(), 0, 'no <img> element was created');
  }
  await sleep(500);
  for (const page of [a, b]) {
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', 'the onerror handler never ran');
  }
});

test('a kicked tab reconnects by itself and shows every message exactly once', { timeout: 60000 }, async () => {
  const a = pages.alice;
  const b = pages.bob;
  const bad = await kick('general', BOB, 'wrong-token');
  assert.ok([401, 403].includes(bad.status), `kick with a bad token answers 401/403 (got ${bad.status})`);
  const missing = await kick('general', `nobody_${RUN}`);
  assert.equal(missing.status, 404, 'kick of an unknown user answers 404');

  const res = await kick('general', BOB);
  assert.equal(res.status, 204, 'kick answers 204');
  const texts = [1, 2, 3].map((i) => `while kicked ${i} ${RUN}`);
  for (const text of texts) {
    await sendMessage(a, text);
    await sleep(150);
  }
  await eventually(async () => (await log(b).getByText(/disconnected by an operator/i).count()) >= 1, { what: 'kick notice in the kicked tab' });
  await waitConnected(b, 30000);
  for (const text of texts) await waitForMessage(b, text, 15000);
  await sleep(1500); // give any duplicate a chance to show up
  for (const text of texts) {
    assert.equal(await countMessage(b, text), 1, `kicked tab shows ${JSON.stringify(text)} exactly once`);
    assert.equal(await countMessage(a, text), 1, `sender shows ${JSON.stringify(text)} exactly once`);
  }
  // Earlier messages are not duplicated by the rejoin either.
  assert.equal(await countMessage(b, `Hello from alice ${RUN}`), 1);
  await eventually(async () => (await log(a).getByText(/removed by an operator/i).count()) >= 1, { what: 'leave (kicked) notice' });
  await eventually(async () => (await onlineUsers(a)).includes(BOB), { what: 'bob back in the user list' });
  // The rejoined tab still works both ways.
  const after = `back after the kick ${RUN}`;
  await sendMessage(b, after);
  await waitForMessage(a, after);
});

test('after a server restart both tabs reconnect and say nothing was lost (the store kept it)', { timeout: 90000 }, async () => {
  const a = pages.alice;
  const b = pages.bob;
  await stopServer('SIGTERM');
  await eventually(async () => /Reconnecting|Offline|Connecting/.test(await statusText(a)), { what: 'tab A notices the outage' });
  await eventually(async () => /Reconnecting|Offline|Connecting/.test(await statusText(b)), { what: 'tab B notices the outage' });
  await startServer();
  for (const [name, page] of [['alice', a], ['bob', b]]) {
    await waitConnected(page, 45000);
    await eventually(async () => (await log(page).getByText(RECOVERED_NOTICE).count()) >= 1, { timeout: 5000, what: `"Reconnected." in ${name}'s tab` });
    assert.equal(await log(page).getByText(RECOVERY_NOTICE).count(), 0, `${name}'s tab says something was lost`);
  }
  for (const page of [a, b]) {
    await eventually(async () => {
      const users = await onlineUsers(page);
      return users.includes(ALICE) && users.includes(BOB);
    }, { timeout: 15000, what: 'both users listed after the restart' });
  }
  const text = `after the restart ${RUN}`;
  await sendMessage(a, text);
  await waitForMessage(b, text);
  assert.equal(await countMessage(b, text), 1);
  assert.equal(await countMessage(b, `Hello from alice ${RUN}`), 1, 'old messages stay, once');
});

test('a nickname already in the room gets an inline error on the nickname form', { timeout: 30000 }, async () => {
  const c = await openTab('carol');
  await signIn(c, ALICE, { expectChat: false });
  const error = c.getByText(NICK_TAKEN_TEXT);
  await error.waitFor({ state: 'visible', timeout: 10000 });
  assert.ok(await c.getByLabel('Nickname').isVisible(), 'back on the nickname form');
  await c.screenshot({ path: path.join(OUT, 'desktop-nick-taken.png'), animations: 'disabled' });
  // Picking another name over the same page joins the room.
  await signIn(c, `carol_${RUN}`);
  assert.ok(!(await error.isVisible()), 'the error is gone');
  await eventually(async () => (await onlineUsers(pages.alice)).includes(`carol_${RUN}`), { what: 'carol listed in tab A' });
});

test('rooms: switching updates the hash and the conversation', { timeout: 30000 }, async () => {
  const c = pages.carol;
  await c.getByLabel('Room').fill(`rust_${RUN}`);
  await c.getByLabel('Room').press('Enter');
  await eventually(async () => (await c.locator('#room-name').innerText()) === `rust_${RUN}`, { what: 'header shows the new room' });
  await waitConnected(c);
  assert.equal(new URL(c.url()).hash, `#rust_${RUN}`);
  await eventually(async () => JSON.stringify(await onlineUsers(c)) === JSON.stringify([`carol_${RUN}`]), { what: 'only carol in the new room' });
  assert.equal(await countMessage(c, `Hello from alice ${RUN}`), 0, 'the old room\'s messages are gone');
  await eventually(async () => !(await onlineUsers(pages.alice)).includes(`carol_${RUN}`), { what: 'carol left general' });
  await c.close();
});

test('screenshots: desktop 1280x800 and phone 360x740', { timeout: 60000 }, async () => {
  const a = pages.alice;
  await sendMessage(pages.bob, 'Looks great on desktop. Anyone tried it on a phone yet?');
  await waitForMessage(a, 'Looks great on desktop. Anyone tried it on a phone yet?');
  await a.bringToFront();
  await a.setViewportSize({ width: 1280, height: 800 });
  await a.screenshot({ path: path.join(OUT, 'desktop.png'), animations: 'disabled' });
  await pages.bob.screenshot({ path: path.join(OUT, 'desktop-bob.png'), animations: 'disabled' });
  await a.emulateMedia({ colorScheme: 'dark' });
  await a.screenshot({ path: path.join(OUT, 'desktop-dark.png'), animations: 'disabled' });
  await a.emulateMedia({ colorScheme: 'light' });

  const phone = await browser.newContext({
    viewport: { width: 360, height: 740 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  try {
    const p = await phone.newPage();
    await watchPage('phone', p);
    await p.goto(`${base}/#general`);
    await p.getByLabel('Nickname').waitFor({ state: 'visible' });
    await p.screenshot({ path: path.join(OUT, 'phone-login.png'), animations: 'disabled' });
    await signIn(p, `dave_${RUN}`);
    await sendMessage(p, 'Checking in from my phone');
    await waitForMessage(a, 'Checking in from my phone');
    await sendMessage(a, 'Welcome, dave! The user list moves to the top on small screens.');
    await waitForMessage(p, 'Welcome, dave! The user list moves to the top on small screens.');
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling on a 360 px screen (overflow ${overflow} px)`);
    assert.ok(await p.getByRole('button', { name: 'Send' }).isVisible(), 'Send button visible on the phone');
    await p.screenshot({ path: path.join(OUT, 'phone.png'), animations: 'disabled' });
  } finally {
    await phone.close();
  }
});

// ------------------------------------------------------------------ a large room

test('the CSP is enforced, and a violation would be seen', { timeout: 30000 }, async () => {
  // A page of its own, not watched: the violations here are made on purpose. Both targets are
  // loopback, so nothing leaves the machine even if the policy were missing.
  const ctx = await browser.newContext();
  try {
    const page = await ctx.newPage();
    await page.addInitScript(() => {
      window.cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective));
    });
    await page.goto(`${base}/#general`);
    await page.getByLabel('Nickname').waitFor({ state: 'visible' });
    await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.inlineRan = true';
      document.head.append(script);
      const img = document.createElement('img');
      img.src = 'http://127.0.0.2:9/x.png';
      document.body.append(img);
    });
    const seen = await eventually(async () => {
      const v = await page.evaluate(() => window.cspViolations);
      return v.length >= 2 && v;
    }, { what: 'two CSP violations reported' });
    assert.ok(seen.some((d) => d.startsWith('script-src')), `an inline script is blocked: ${seen}`);
    assert.ok(seen.some((d) => d.startsWith('img-src')), `a foreign image is blocked: ${seen}`);
    assert.equal(await page.evaluate(() => window.inlineRan), undefined, 'the inline script did not run');
  } finally {
    await ctx.close();
  }
});

// The second server's rooms are large past 3 members (presence frames instead of notices),
// welcomes and `who` pages list 3 names, and a presence frame lists at most 2 names per list.
const LARGE_ROOM_FLAGS = ['--presence-notify-max', '3', '--presence-list-max', '3', '--presence-changes-max', '2'];
const LARGE_ROOM = `big_${RUN}`;
/** How long a presence change may take to show: the 1 s --presence-interval, and some slack. */
const PRESENCE_MS = 3000;

/** The crowd: plain WebSockets, opened from one page of the large server's origin (so the
 *  server's Origin check passes, and Node needs no WebSocket of its own). */
async function openCrowd(ctx, origin) {
  const page = await ctx.newPage();
  await page.goto(`${origin}/healthz`);
  await page.evaluate(() => {
    const sockets = new Map();
    window.crowdCounts = []; // the user_count of every presence frame any of them got
    window.crowdJoin = (nick, room) => new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${location.host}/ws?nick=${encodeURIComponent(nick)}&room=${encodeURIComponent(room)}`);
      sockets.set(nick, ws);
      ws.onmessage = (ev) => {
        const frame = JSON.parse(ev.data);
        if (frame.type === 'presence') window.crowdCounts.push(frame.user_count);
        if (frame.type === 'welcome') resolve(frame.user_count);
        if (frame.type === 'error') reject(new Error(`${nick}: ${frame.code}`));
      };
      ws.onclose = (ev) => reject(new Error(`${nick}: closed ${ev.code}`));
    });
    window.crowdLeave = (nick) => {
      const ws = sockets.get(nick);
      sockets.delete(nick);
      ws.onclose = null;
      ws.close(1000);
    };
  });
  return {
    page,
    join: (...nicks) => Promise.all(nicks.map((nick) => page.evaluate(([n, r]) => window.crowdJoin(n, r), [nick, LARGE_ROOM]))),
    leave: (nick) => page.evaluate((n) => window.crowdLeave(n), nick),
    /** Whether the crowd got a presence frame saying the room has `count` members. */
    heard: (count) => page.evaluate((n) => window.crowdCounts.includes(n), count),
  };
}

/** The server's order of names (lowercase, then code points; these are all ASCII). */
function serverOrder(names) {
  return [...names].sort((a, b) => {
    const [x, y] = [a.toLowerCase(), b.toLowerCase()];
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

async function userCount(page) {
  return Number((await page.locator('#user-count').innerText()).replace(/\D/g, ''));
}

async function moreText(page) {
  const more = page.locator('#users-more');
  return (await more.isVisible()) ? (await more.innerText()).trim() : '';
}

/** Every text frame `page` gets on its sockets, in order, for a failure to say what came. */
function recordFrames(page) {
  const frames = [];
  page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => frames.push(String(payload))));
  return frames;
}

/** Waits until the page shows exactly `names` (in order), the count and the "and N more". */
async function waitForList(page, { names, count, more, timeout = 10000, what }) {
  const want = JSON.stringify({ names, count, more });
  const shown = async () => ({ names: await onlineUsers(page), count: await userCount(page), more: await moreText(page) });
  await eventually(async () => JSON.stringify(await shown()) === want, { timeout, what: `${what}: ${want}` }).catch(async (err) => {
    throw new Error(`${err.message}; the page shows ${JSON.stringify(await shown())}`);
  });
}

test('a large room: the count, "and N more", paging, presence within seconds, calm log', { timeout: 120000 }, async () => {
  const largePort = await freePort();
  const origin = `http://127.0.0.1:${largePort}`;
  largeServer = await launchServer(largePort, LARGE_ROOM_FLAGS, 'server-large-rooms.log');
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    const crowd = await openCrowd(ctx, origin);
    const members = new Set(); // everyone in the room, as the test made it
    const first = Array.from({ length: 8 }, (_, i) => `crowd${i + 1}_${RUN}`);
    for (const nick of first) {
      await crowd.join(nick);
      members.add(nick);
    }
    // The room announces changes once per interval, all those since the last frame in one: let
    // the crowd's be told before the viewer comes, so none of them shares a frame with the
    // changes the viewer is to see (a frame of over --presence-changes-max names is cut short).
    await eventually(() => crowd.heard(first.length), { timeout: PRESENCE_MS, what: 'the crowd\'s joins announced' });

    // The watching page sorts after the crowd, so it is not on the first page.
    const viewer = `viewer_${RUN}`;
    const v = await ctx.newPage();
    await watchPage('large-room viewer', v);
    const heard = recordFrames(v);
    await v.goto(`${origin}/#${LARGE_ROOM}`);
    await signIn(v, viewer);
    members.add(viewer);
    const others = () => serverOrder([...members].filter((n) => n !== viewer));
    await waitForList(v, { names: [viewer, ...others().slice(0, 3)], count: 9, more: 'and 5 more', what: 'the first page' });
    await v.screenshot({ path: path.join(OUT, 'desktop-large-room.png'), animations: 'disabled' });

    // Paging: each click brings the next 3 names, appended; this page's own name comes once.
    await v.locator('#users-more').click();
    await waitForList(v, { names: [viewer, ...others().slice(0, 6)], count: 9, more: 'and 2 more', what: 'the second page' });
    await v.getByRole('button', { name: 'and 2 more' }).click();
    await waitForList(v, { names: [viewer, ...others()], count: 9, more: '', what: 'every name, once' });

    // The viewer's own join is announced (to it as well) before anything else changes.
    const presence = () => heard.map((f) => JSON.parse(f)).filter((f) => f.type === 'presence');
    await eventually(async () => presence().some((f) => f.user_count === members.size), { timeout: PRESENCE_MS, what: 'the viewer\'s own join announced' });

    // Someone joins and someone leaves: one presence frame, within the interval.
    const started = Date.now();
    const joiner = `crowd9_${RUN}`;
    await crowd.join(joiner);
    members.add(joiner);
    await crowd.leave(first[1]);
    members.delete(first[1]);
    await waitForList(v, { names: [viewer, ...others()], count: members.size, more: '', timeout: PRESENCE_MS, what: 'a join and a leave' })
      .catch((err) => { throw new Error(`${err.message}; the viewer's last frames: ${heard.slice(-8).join(' | ')}`); });
    console.log(`# a join and a leave showed in ${Date.now() - started} ms`);

    // A burst past --presence-changes-max: the frame names 2 of each list, the page says the
    // list may be out of date, and Refresh pages it again.
    const burst = ['a', 'b', 'c', 'd', 'e'].map((x) => `crowd0${x}_${RUN}`);
    await crowd.join(...burst);
    burst.forEach((nick) => members.add(nick));
    const stale = v.getByText('This list may be out of date.');
    await stale.waitFor({ state: 'visible', timeout: PRESENCE_MS });
    await eventually(async () => (await userCount(v)) === members.size, { timeout: PRESENCE_MS, what: 'the count, right even when the names are not' });
    await v.screenshot({ path: path.join(OUT, 'desktop-large-room-stale.png'), animations: 'disabled' });
    await v.getByRole('button', { name: 'Refresh' }).click();
    await waitForList(v, { names: [viewer, ...others()], count: members.size, more: '', what: 'the list after Refresh' });
    assert.ok(!(await stale.isVisible()), 'up to date again');

    // The log stays calm: one line about the busy room, none per name.
    const conversation = await log(v).innerText();
    for (const nick of [joiner, first[1], ...burst]) {
      assert.ok(!conversation.includes(nick), `no line about ${nick} in the log`);
    }
    assert.equal(await log(v).getByText(/This room is busy/).count(), 1, 'one notice saying why');

    // A phone joins: it shows its first page and the count; the viewer sees it come.
    const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    try {
      const p = await phone.newPage();
      await watchPage('large-room phone', p);
      await p.goto(`${origin}/#${LARGE_ROOM}`);
      const phoneNick = `phone_${RUN}`;
      await signIn(p, phoneNick);
      members.add(phoneNick);
      const listed = serverOrder([...members].filter((n) => n !== phoneNick)).slice(0, 3);
      await waitForList(p, { names: [phoneNick, ...listed], count: members.size, more: `and ${members.size - 4} more`, what: 'the phone\'s first page' });
      await waitForList(v, { names: [viewer, ...others()], count: members.size, more: '', timeout: PRESENCE_MS, what: 'the phone in the viewer\'s list' });
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no horizontal scrolling on a 360 px screen (overflow ${overflow} px)`);
      await sendMessage(p, 'Hello from a phone in a busy room');
      await waitForMessage(v, 'Hello from a phone in a busy room');
      await p.screenshot({ path: path.join(OUT, 'phone-large-room.png'), animations: 'disabled' });
    } finally {
      await phone.close();
    }
    await v.screenshot({ path: path.join(OUT, 'desktop-large-room-paged.png'), animations: 'disabled' });
  } finally {
    await ctx.close();
    await stopProcess(largeServer);
    largeServer = null;
  }
});

// ------------------------------------------------------------------ scrollback

const SCROLL_ROOM = `scroll_${RUN}`;
/** More than a welcome carries (--history, default 100), so the real server must page too. */
const SCROLL_MESSAGES = 130;
/** A welcome cut to this many messages by the test's socket route, so the fake pages. */
const FAKE_WELCOME_KEEP = 10;

let written = null; // the promise of writeScrollRoom(): every message of SCROLL_ROOM, oldest first

/** Fills SCROLL_ROOM once with SCROLL_MESSAGES messages from a plain WebSocket (its own page,
 *  paced under the server's 10 a second), and resolves with the message frames it got back. */
function writeScrollRoom() {
  written ??= (async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await page.goto(`${base}/healthz`);
      return await page.evaluate(([room, count]) => new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${location.host}/ws?nick=writer&room=${encodeURIComponent(room)}`);
        const got = [];
        ws.onmessage = async (ev) => {
          const frame = JSON.parse(ev.data);
          if (frame.type === 'error') reject(new Error(`writer: ${frame.code}`));
          if (frame.type === 'message') got.push(frame);
          if (got.length === count) {
            ws.onclose = null;
            ws.close(1000);
            resolve(got);
          }
          if (frame.type !== 'welcome') return;
          for (let i = 1; i <= count; i++) {
            ws.send(JSON.stringify({ type: 'message', text: `scroll ${i}` }));
            if (i > 15) await new Promise((r) => setTimeout(r, 115));
          }
        };
        ws.onclose = (ev) => reject(new Error(`writer: closed ${ev.code}`));
      }), [SCROLL_ROOM, SCROLL_MESSAGES]);
    } finally {
      await ctx.close();
    }
  })();
  return written;
}

/**
 * Routes the page's chat socket through the test: every frame passes, and `history` requests
 * are counted (with how many were ever in flight at once). `answer(request)`, if given, answers
 * a request in place of the server (after `delayMs`); `keepWelcome` cuts a welcome's history to
 * its last so many messages. Returns the live record.
 */
async function routeChat(page, { answer = null, keepWelcome = null, delayMs = 0 } = {}) {
  const record = { requests: [], replies: 0, inFlight: 0, maxInFlight: 0 };
  await page.routeWebSocket(/\/ws\?/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((data) => {
      const frame = typeof data === 'string' ? JSON.parse(data) : null;
      if (frame && frame.type === 'history') {
        record.requests.push(frame);
        record.inFlight += 1;
        record.maxInFlight = Math.max(record.maxInFlight, record.inFlight);
        if (answer) {
          setTimeout(() => {
            record.inFlight -= 1;
            record.replies += 1;
            ws.send(JSON.stringify(answer(frame)));
          }, delayMs);
          return;
        }
      }
      server.send(data);
    });
    server.onMessage((data) => {
      let out = data;
      const frame = typeof data === 'string' ? JSON.parse(data) : null;
      if (frame && (frame.type === 'history' || (frame.type === 'error' && record.inFlight > 0))) {
        record.inFlight = Math.max(0, record.inFlight - 1);
        record.replies += 1;
      }
      if (frame && frame.type === 'welcome' && keepWelcome != null) {
        out = JSON.stringify({ ...frame, history: frame.history.slice(-keepWelcome) });
      }
      ws.send(out);
    });
  });
  return record;
}

/** The page answering `history` as the protocol says, from `all` (oldest first). */
function historyFrom(all, room) {
  return ({ before, limit }) => {
    const older = all.filter((m) => m.seq < before);
    const messages = older.slice(-Math.min(limit, 100));
    return { type: 'history', room, messages, complete: messages.length === older.length };
  };
}

/** The seqs the log shows, top to bottom. */
async function shownSeqs(page) {
  return page.locator('#log li[data-seq]').evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
}

/** A new tab in SCROLL_ROOM whose chat socket goes through routeChat(route), signed in. */
async function openScrollTab(name, route) {
  const page = await context.newPage();
  await watchPage(name, page);
  const record = await routeChat(page, route);
  await page.goto(`${base}/#${SCROLL_ROOM}`);
  pages[name] = page;
  await signIn(page, `${name}_${RUN}`);
  return { page, record };
}

/** Scrolls the log to its top as a person would; returns the seq of the message that was the
 *  top one and where it was in the log's view then. (Layout offsets, not client rects: a new
 *  message's slide-in transform would move its rect by a few pixels.) */
async function scrollLogToTop(page) {
  return page.locator('#log').evaluate((logEl) => {
    const first = logEl.querySelector('li[data-seq]');
    logEl.scrollTop = 0;
    return { seq: Number(first.dataset.seq), top: first.offsetTop - logEl.scrollTop };
  });
}

async function topOfSeq(page, seq) {
  return page.locator(`#log li[data-seq="${seq}"]`).evaluate((li) => li.offsetTop - li.parentElement.scrollTop);
}

/**
 * The scrollback scenario, against whatever answers `history` for `page`: scrolled to the top
 * again and again, the log gains the older pages above, the message that was on top stays where
 * it was, one request at a time, until the beginning marker shows; then every message of
 * SCROLL_ROOM is shown once, in order, and no more requests go out.
 */
async function checkScrollback(page, record, all, { expectLoading = false } = {}) {
  const want = all.map((m) => m.seq);
  const start = page.getByTestId('history-start');
  const loading = page.getByTestId('history-loading');
  assert.ok(!(await start.isVisible()), 'no beginning marker while older messages exist');
  for (let step = 0; !(await start.isVisible()); step++) {
    assert.ok(step < 10, `the beginning reached within 10 scrolls (shown: ${(await shownSeqs(page)).length})`);
    const before = (await shownSeqs(page)).length;
    const anchor = await scrollLogToTop(page);
    if (expectLoading && step === 0) await loading.waitFor({ state: 'visible', timeout: 5000 });
    await eventually(async () => (await shownSeqs(page)).length > before || (await start.isVisible()), { what: `an older page (step ${step})` });
    await sleep(100); // let a short page's follow-up settle before measuring
    const moved = (await topOfSeq(page, anchor.seq)) - anchor.top;
    assert.ok(Math.abs(moved) <= 1, `the message on top (seq ${anchor.seq}) stayed in place (moved ${moved} px)`);
  }
  await eventually(async () => !(await loading.isVisible()), { what: 'the loading line gone' });
  assert.deepEqual(await shownSeqs(page), want, 'every message once, in order');
  assert.equal(await countMessage(page, 'scroll 1'), 1);
  assert.ok(record.maxInFlight <= 1, `one request at a time (at most ${record.maxInFlight} were in flight)`);
  for (const r of record.requests) {
    assert.equal(r.limit, 50, 'pages of 50');
    assert.ok(Number.isInteger(r.before), `before is a seq: ${JSON.stringify(r)}`);
  }
  // Complete: scrolling down and up again asks for nothing more.
  const asked = record.requests.length;
  await page.locator('#log').evaluate((logEl) => { logEl.scrollTop = logEl.scrollHeight; });
  await sleep(200);
  await scrollLogToTop(page);
  await sleep(1000);
  assert.equal(record.requests.length, asked, 'no request after the beginning is shown');
  assert.ok(!(await page.locator('#chat-error').isVisible()), 'no error shown');
}

test('scrollback: older pages come in above, in place, each message once, down to the beginning (the test answers history)', { timeout: 90000 }, async () => {
  const all = await writeScrollRoom();
  assert.equal(all.length, SCROLL_MESSAGES);
  const { page, record } = await openScrollTab('scroller', {
    answer: historyFrom(all, SCROLL_ROOM), keepWelcome: FAKE_WELCOME_KEEP, delayMs: 400,
  });
  await eventually(async () => (await shownSeqs(page)).length >= FAKE_WELCOME_KEEP, { what: 'the welcome\'s messages' });
  await checkScrollback(page, record, all, { expectLoading: true });
  await page.screenshot({ path: path.join(OUT, 'desktop-scrollback-start.png'), animations: 'disabled' });
  assert.ok(record.requests.length >= 2, `paged more than once (${record.requests.length} requests)`);
  // Live messages still land at the bottom, once.
  await sendMessage(page, `after scrolling back ${RUN}`);
  await waitForMessage(page, `after scrolling back ${RUN}`);
  await page.screenshot({ path: path.join(OUT, 'desktop-scrollback-live.png'), animations: 'disabled' });
  await page.close();
});

test('scrollback against a server without history: one quiet request, then none on that connection', { timeout: 60000 }, async () => {
  await writeScrollRoom();
  const { page, record } = await openScrollTab('oldserver', {
    answer: () => ({ type: 'error', code: 'unknown_type', message: 'unknown type "history"' }),
  });
  await scrollLogToTop(page);
  await eventually(async () => record.replies >= 1, { what: 'the history request refused' });
  await page.locator('#log').evaluate((logEl) => { logEl.scrollTop = logEl.scrollHeight; });
  await sleep(200);
  await scrollLogToTop(page);
  await sleep(1000);
  assert.equal(record.requests.length, 1, 'asked once');
  assert.equal(await page.evaluate(() => window.chat.scrollback.supported), false);
  assert.ok(!(await page.locator('#chat-error').isVisible()), 'the refusal is not shown to the person');
  assert.ok(!(await page.getByTestId('history-loading').isVisible()), 'not loading');
  assert.ok(!(await page.getByTestId('history-start').isVisible()), 'no beginning marker: it is not known');
  await page.close();
});

/**
 * The scrollback scenario against the server's own `history` pages, from its store. The
 * welcome carries the latest 100 of SCROLL_MESSAGES, so the client must page the rest.
 */
function testScrollbackWithServerHistory() {
  test('scrollback against the server\'s history: older pages above, in place, once each, to the beginning', { timeout: 90000 }, async () => {
    const all = await writeScrollRoom();
    const { page, record } = await openScrollTab('scroller_real', {});
    await eventually(async () => (await shownSeqs(page)).length >= 100, { what: 'the welcome\'s 100 messages' });
    // The room is the store's: it also holds what earlier tests said in it after the writer.
    const top = Math.max(all.length, ...(await shownSeqs(page)));
    const stored = Array.from({ length: top }, (_, i) => ({ seq: i + 1 }));
    await checkScrollback(page, record, stored);
    assert.equal(await page.evaluate(() => window.chat.scrollback.supported), true);
    await page.close();
  });
}

testScrollbackWithServerHistory();

test('no script errors in any tab', () => {
  assert.deepEqual(pageErrors, []);
});
