// The wire protocol module: a text for exactly what the server sends, and the frames it is sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  checkNick, checkRoom, CLOSE_TEXTS, connectQuery, describeClose, describeError, ERROR_TEXTS,
  joinFrame, LEAVE_TEXTS, leaveText, parseServerFrame,
} from '../../static/protocol.js';
import { documentedCloseCodes, documentedErrorCodes, documentedLeaveReasons } from './readme.mjs';

const LIMITS = { textBytesMax: 300, nickCharsMax: 8, roomCharsMax: 10, defaultRoom: 'lobby' };
const GENERIC_CLOSE = describeClose(1006);

test('every close code the server sends has its own text, and no other code has one', () => {
  const documented = documentedCloseCodes();
  assert.ok(documented.includes(1013), `README's close codes: ${documented}`);
  assert.deepEqual(Object.keys(CLOSE_TEXTS).map(Number).sort((a, b) => a - b), documented);
  for (const code of documented) {
    const text = describeClose(code);
    assert.match(text, /\w.*\.$/, `close ${code}: a sentence`);
    assert.notEqual(text, GENERIC_CLOSE, `close ${code} has more to say than the generic text`);
  }
  // 1006: the browser's code for "no close frame" (the server or the network went away).
  for (const unknown of [1006, 1011, 4002, 4999, undefined]) {
    assert.equal(describeClose(unknown), 'The connection to the server was lost.', `close ${unknown}`);
  }
});

test('every leave reason the server sends has its own text, and no other reason has one', () => {
  const documented = documentedLeaveReasons();
  assert.ok(documented.includes('flooding'), `README's leave reasons: ${documented}`);
  assert.deepEqual(Object.keys(LEAVE_TEXTS).sort(), [...documented].sort());
  const texts = new Set();
  for (const reason of documented) {
    const text = leaveText({ nick: 'ann', reason });
    assert.match(text, /^ann \w/, `leave ${reason}`);
    texts.add(text);
  }
  assert.equal(texts.size, documented.length, 'each reason reads differently');
  assert.equal(leaveText({ nick: 'ann', reason: 'raptured' }), 'ann left');
  assert.equal(leaveText({ nick: 'ann' }), 'ann left');
});

test('every error code the server sends has a text; others show the server\'s message', () => {
  const documented = documentedErrorCodes();
  assert.deepEqual(Object.keys(ERROR_TEXTS).sort(), [...documented].sort());
  for (const code of documented) {
    assert.doesNotMatch(describeError({ code }, LIMITS), /reported a problem/, `error ${code}`);
  }
  assert.equal(describeError({ code: 'nick_taken' }, LIMITS),
    'That nickname is already taken in this room. Please pick another.');
  assert.match(describeError({ code: 'message_too_long' }, LIMITS), /the limit is 300 bytes/);
  assert.equal(describeError({ code: 'invalid_nick', message: 'too long' }, LIMITS),
    'That nickname is not allowed (too long). Please pick another.');
  assert.equal(describeError({ code: 'brand_new', message: 'it broke' }, LIMITS),
    'The server reported a problem: it broke');
  assert.equal(describeError({ code: 'toString' }, LIMITS), 'The server reported a problem.');
});

test('a join asks for what was missed only when given a resume point', () => {
  assert.deepEqual(JSON.parse(joinFrame({ room: 'rust', nick: 'ann', resume: null })),
    { type: 'join', room: 'rust', nick: 'ann' });
  assert.deepEqual(JSON.parse(joinFrame({ room: 'rust', nick: 'ann', resume: { since: 41, epoch: 'e-1' } })),
    { type: 'join', room: 'rust', nick: 'ann', since: 41, epoch: 'e-1' });
  assert.equal(connectQuery({ room: 'r.1', nick: 'ann b&c', resume: null }), 'nick=ann+b%26c&room=r.1');
  assert.equal(connectQuery({ room: 'r', nick: 'n', resume: { since: 0, epoch: 'e 1' } }),
    'nick=n&room=r&since=0&epoch=e+1');
});

test('server frames are JSON objects with a type; anything else is dropped', () => {
  assert.deepEqual(parseServerFrame('{"type":"typing","nick":"bob"}'), { type: 'typing', nick: 'bob' });
  for (const bad of ['', 'hi', '{"type":', 'null', '[1]', '42', '{"nick":"bob"}', '{"type":7}']) {
    assert.equal(parseServerFrame(bad), null, JSON.stringify(bad));
  }
});

test('names are checked against the limits from /config.json', () => {
  assert.equal(checkNick('ann', LIMITS), null);
  assert.equal(checkNick('12345678', LIMITS), null);
  assert.equal(checkNick('123456789', LIMITS), 'A nickname can have at most 8 characters.');
  assert.equal(checkNick('😀😀😀😀😀😀😀😀', LIMITS), null, 'characters, not UTF-16 units');
  assert.equal(checkNick('', LIMITS), 'Please enter a nickname.');
  assert.match(checkNick('a\u0007b', LIMITS), /control characters/);
  assert.match(checkNick('Guest-1', LIMITS), /reserved/);
  assert.equal(checkRoom('rust_1.x-y', LIMITS), null);
  assert.equal(checkRoom('r'.repeat(11), LIMITS), 'A room name can have at most 10 characters.');
  assert.match(checkRoom('two words', LIMITS), /only use letters/);
  assert.equal(checkRoom('', LIMITS), 'Please enter a room name.');
});
