-- banditd: forgets one event-id shard's ids whose retention (arrival + reward window, by the
-- engine's clock) is at or before ARGV[1] (ms): the ids of every list whose end has passed,
-- unless the directory holds a later claim of the same id; and the legacy keys of stores
-- written before the directory. Returns how many ids.
-- KEYS[1] the shard's directory, KEYS[2] its list index (member: list key; score: its end),
-- KEYS[3] its legacy due index (member: the legacy event key; score: retention end), KEYS[4] its
-- digest set, KEYS[5] its digest lists' index (member: list key; score: its end). A digest
-- list (a string of 8-byte digests, src/store/redis/layout.rs, `event_digest_key`) is dropped
-- with its digests as a whole: a digest is added only while absent, so it sits in one list.
local dir, index, due, digests, digest_index = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])
-- When the engine may forget the id an entry holds: `A<end>`, or a pending claim's arrival +
-- window (`P<claim>\t<revision>\t<shard>\t<kind>\t...\t<now>\t<window>\t<half-life>\t<keep>`).
local function retained_until(held)
  if string.sub(held, 1, 1) == 'A' then return tonumber(string.sub(held, 2)) end
  local arrival, window = string.match(held, '\t([^\t]*)\t([^\t]*)\t[^\t]*\t[^\t]*$')
  return (tonumber(arrival) or 0) + (tonumber(window) or 0)
end
local removed = 0
for _, list in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now)) do
  for _, id in ipairs(redis.call('LRANGE', list, 0, -1)) do
    local held = redis.call('HGET', dir, id)
    if held and (retained_until(held) or 0) <= now then
      redis.call('HDEL', dir, id)
      removed = removed + 1
    end
  end
  redis.call('DEL', list)
  redis.call('ZREM', index, list)
end
for _, list in ipairs(redis.call('ZRANGEBYSCORE', digest_index, '-inf', now)) do
  local packed = redis.call('GET', list) or ''
  local batch = {}
  for at = 1, #packed - 7, 8 do
    batch[#batch + 1] = string.sub(packed, at, at + 7)
    if #batch == 512 then
      removed = removed + redis.call('SREM', digests, unpack(batch))
      batch = {}
    end
  end
  if #batch > 0 then removed = removed + redis.call('SREM', digests, unpack(batch)) end
  redis.call('DEL', list)
  redis.call('ZREM', digest_index, list)
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now)) do
  redis.call('DEL', key)
  redis.call('ZREM', due, key)
  removed = removed + 1
end
return removed
