//! The Lua scripts: every step that reads or writes more than one key runs as one script, so Redis
//! applies it atomically (no other client's command runs in between).
//!
//! Seqs travel as strings in both directions: a Lua number prints exactly only up to 14 digits
//! (`%.14g`), and that is far above any seq a room reaches, but strings keep the reply shape uniform.

use std::sync::LazyLock;

use ::redis::Script;

/// Publish a batch. KEYS: meta, log, then one op key per message. ARGV: fresh epoch, retention,
/// op ttl (ms), channel, room, numbered ("1" or "0"), then a head and a tail per message: numbered,
/// the message is `head .. seq .. tail` (a chat frame numbered here, so every node keeps the same
/// bytes for a seq); else it is `head`.
/// Replies `{epoch1, seq1, fresh1, epoch2, seq2, fresh2, ...}`, in the batch's order; `fresh` is 0
/// when the message's op key showed an earlier call with the same idem key already wrote it (then
/// nothing is written or published again).
///
/// The batch is one atomic step, so its messages take consecutive seqs in its order: a node sends
/// a room's waiting messages as one batch instead of one round trip each.
///
/// A room whose meta has no epoch starts a new one at seq 0, and its old stream (if any survived
/// the meta) is dropped: it belongs to an epoch nobody can name any more, and its ids would be
/// above the new seqs (XADD would refuse them).
pub(crate) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
local epoch = nil
for i = 3, #KEYS do
  local head = ARGV[5 + 2 * (i - 2)]
  local tail = ARGV[6 + 2 * (i - 2)]
  local done = redis.call('GET', KEYS[i])
  local nl = done and string.find(done, '\n', 1, true)
  if nl then
    out[#out + 1] = string.sub(done, nl + 1)
    out[#out + 1] = string.sub(done, 1, nl - 1)
    out[#out + 1] = 0
  else
    if not epoch then
      epoch = redis.call('HGET', KEYS[1], 'epoch')
      if not epoch then
        epoch = ARGV[1]
        redis.call('DEL', KEYS[2])
        redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
      end
    end
    local seq = tostring(redis.call('HINCRBY', KEYS[1], 'seq', 1))
    local body = head
    if ARGV[6] == '1' then
      body = head .. seq .. tail
    end
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0', 'p', body)
    redis.call('SET', KEYS[i], seq .. '\n' .. epoch, 'PX', ARGV[3])
    redis.call('PUBLISH', ARGV[4], 'c1\n' .. ARGV[5] .. '\n' .. epoch .. '\n' .. seq .. '\n' .. body)
    out[#out + 1] = epoch
    out[#out + 1] = seq
    out[#out + 1] = 1
  end
end
return out
"#,
    )
});

/// State. KEYS: meta, log. ARGV: fresh epoch. Replies `{epoch, seq}`, creating the epoch at seq 0
/// when the meta has none (an empty Redis means a new epoch).
pub(crate) static STATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
return {epoch, tostring(redis.call('HGET', KEYS[1], 'seq') or '0')}
"#,
    )
});

/// Range. KEYS: meta, log. ARGV: after, limit. Replies `false` when the room has no epoch, else
/// `{epoch, seq, oldest, seq1, body1, seq2, body2, ...}` where `oldest` is the oldest seq the
/// stream still holds ("" when it is empty). Meta and stream are read in one script so the seq and
/// the messages agree.
pub(crate) static RANGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return false
end
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
local out = {epoch, seq, ''}
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if first[1] then
  out[3] = string.match(first[1][1], '^(%d+)%-0$') or 'bad'
end
if tonumber(ARGV[2]) > 0 then
  local entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
  for _, entry in ipairs(entries) do
    -- our entries have one field, p: its value is the body
    out[#out + 1] = entry[1]
    out[#out + 1] = entry[2][2]
  end
end
return out
"#,
    )
});

/// Claim a nickname. KEYS: nick. ARGV: owner, ttl (ms). Replies 1 (won: free, or already ours,
/// and then the expiry is refreshed) or 0 (taken by another owner).
pub(crate) static CLAIM_NICK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// Renew many claims of one room. KEYS: nick 1..N. ARGV: ttl (ms), owner 1..N. Each key still
/// (or again, once expired) its owner's gets the ttl afresh and 1; one another owner took gets 0.
pub(crate) static RENEW_NICKS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == false or owner == ARGV[i + 1] then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"#,
    )
});

/// Release a nickname. KEYS: nick. ARGV: owner. Deletes only if the owner still holds it.
pub(crate) static RELEASE_NICK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#,
    )
});

/// Announce a node's seats. KEYS: the node's seats hash, its announcement counter, its alive
/// key, the set of nodes with seats. ARGV: node, alive ttl (ms), full (1: the hash is replaced),
/// the relay channel, the announcement's JSON up to its number, then field/value pairs (an
/// empty value removes the field). Numbers the announcement (the counter), keeps the node alive
/// for the ttl (its seats for four), and publishes the JSON with `n` last. Replies `n`.
pub(crate) static SEATS_ANNOUNCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[1])
end
for i = 6, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
local n = redis.call('INCR', KEYS[2])
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[3], '1', 'PX', ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 4)
redis.call('PEXPIRE', KEYS[2], ttl * 4)
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. n .. '}')
return n
"#,
    )
});

/// A node's seats as they stand. KEYS: its seats hash, its counter, its alive key. Replies
/// `{alive, n, {field1, value1, ...}}` (`alive` 0 once its key expired: the node is gone).
pub(crate) static SEATS_SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local alive = redis.call('EXISTS', KEYS[3])
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
return {alive, n, redis.call('HGETALL', KEYS[1])}
"#,
    )
});
