// Reading the server's /config.json (README, "HTTP endpoints") into the limits the client uses.
// The client has no copies of these: a server started with other flags must be obeyed, and a
// body without them is an error shown to the person, never papered over with defaults. Pure.
// (Its close_codes and leave_reasons are for the browser test, which checks protocol.js has a
// text for each.)

import { checkRoom } from './protocol.js';

const POSITIVE_INTEGERS = {
  textBytesMax: 'text_bytes_max',
  nickCharsMax: 'nick_chars_max',
  roomCharsMax: 'room_chars_max',
};

/** The client's limits from a parsed /config.json body; throws an Error naming what is wrong. */
export function readConfig(json) {
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error('/config.json is not a JSON object');
  }
  const config = {};
  for (const [key, field] of Object.entries(POSITIVE_INTEGERS)) {
    const value = json[field];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new Error(`/config.json: "${field}" must be a positive integer, not ${JSON.stringify(value)}`);
    }
    config[key] = value;
  }
  const room = json.default_room;
  const problem = typeof room === 'string' ? checkRoom(room, config) : 'it is not a string';
  if (problem) {
    throw new Error(`/config.json: "default_room" ${JSON.stringify(room)} is not a room name: ${problem}`);
  }
  config.defaultRoom = room;
  return Object.freeze(config);
}
