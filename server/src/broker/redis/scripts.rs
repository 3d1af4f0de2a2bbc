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

/// Presence put. KEYS: presence zset, info hash. ARGV: member, info, ttl (ms). The expiry is
/// Redis's own clock plus the ttl, so the nodes' clocks never matter. Both keys live at least as
/// long as their newest member, so a room nobody refreshes disappears by itself.
pub(crate) static PRESENCE_PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local ttl = tonumber(ARGV[3])
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
end
return 1
"#,
    )
});

/// Presence remove. KEYS: presence zset, info hash. ARGV: member.
pub(crate) static PRESENCE_REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"#,
    )
});

/// Presence list. KEYS: presence zset, info hash. Purges the members whose expiry has passed (by
/// Redis's clock), then replies `{{expired...}, {member1, info1, member2, info2, ...}}`. A purge
/// happens once, so exactly one caller sees a given member expire.
pub(crate) static PRESENCE_LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  -- one HDEL per member: unpack() of a long list would overflow Lua's stack
  for _, m in ipairs(expired) do
    redis.call('HDEL', KEYS[2], m)
  end
end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local live = {}
for _, m in ipairs(members) do
  live[#live + 1] = m
  live[#live + 1] = redis.call('HGET', KEYS[2], m) or ''
end
return {expired, live}
"#,
    )
});
