// Reading /config.json: the server's values are taken as they are, a bad body is a named error.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { readConfig } from '../../static/config.js';

// The shape the server sends (server/src/client_config.rs), with non-default values.
const SERVED = {
  close_codes: [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1013, 4000, 4001, 4003],
  default_room: 'lobby',
  history_max: 7,
  leave_reasons: ['left', 'switched', 'evicted', 'timeout', 'flooding', 'kicked'],
  nick_chars_max: 20,
  rate_limit_burst: 3,
  rate_limit_per_second: 2,
  room_chars_max: 40,
  text_bytes_max: 300,
};

test('the limits come from the server\'s body, whatever they are', () => {
  assert.deepEqual({ ...readConfig(SERVED) },
    { textBytesMax: 300, nickCharsMax: 20, roomCharsMax: 40, defaultRoom: 'lobby' });
  assert.ok(Object.isFrozen(readConfig(SERVED)));
});

test('a body without a usable limit is an error naming the field, never a default', () => {
  const cases = [
    [null, /not a JSON object/],
    [[], /not a JSON object/],
    ['{}', /not a JSON object/],
    [{ ...SERVED, text_bytes_max: undefined }, /"text_bytes_max" must be a positive integer, not undefined/],
    [{ ...SERVED, text_bytes_max: 0 }, /"text_bytes_max" must be a positive integer, not 0/],
    [{ ...SERVED, nick_chars_max: '32' }, /"nick_chars_max" must be a positive integer, not "32"/],
    [{ ...SERVED, room_chars_max: 1.5 }, /"room_chars_max" must be a positive integer/],
    [{ ...SERVED, default_room: undefined }, /"default_room" undefined is not a room name/],
    [{ ...SERVED, default_room: 'two words' }, /"default_room" "two words" is not a room name: Room names can only/],
    [{ ...SERVED, default_room: 'x'.repeat(41) }, /at most 40 characters/],
  ];
  for (const [body, error] of cases) {
    assert.throws(() => readConfig(body), error, JSON.stringify(body));
  }
});
