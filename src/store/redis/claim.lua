-- banditd: claims event ids for rewards about to be applied (src/store/redis/rewards.rs).
-- Ids live in the shard's directory hash, and are listed for the sweep in one list per hour
-- of retention ends (src/store/redis/layout.rs, `event_dir_key`); ids of stores written
-- before the directory (one key each, indexed by the legacy due index) are read here until
-- the last of them expires.
-- KEYS[1] the directory of this event-id shard, KEYS[2] its list index, KEYS[3] its legacy due
-- index, then two per reward: the id's legacy key, the list it joins (a key may repeat).
-- ARGV[1] how long Redis keeps the directory at least (ms), then five per reward: claim id, the
-- reward as the apply step needs it, the event id, the list's end (ms), how long Redis keeps
-- the list at least (ms).
-- One reply per reward: `C` claimed now; `D` applied before; else the pending claim
-- (`P<claim>\t<reward>`) that must be finished first.
local dir, index, legacy_due = KEYS[1], KEYS[2], KEYS[3]
local legacy = redis.call('EXISTS', legacy_due) == 1
-- Redis's own expiry is a backstop for a store no sweep reaches any more: it is pushed out an
-- hour past what is needed, so that it is rewritten once an hour rather than every call.
local HOUR = 3600000
local function keep_at_least(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms + HOUR) end
end
-- Claims are written to the directory once, at the end of the call (one HSET for all of
-- them: each write command is an AOF record); `claimed` holds them until then, so an id that
-- repeats in this call meets its first claim.
local claimed, claims = {}, {}
local joined, lists = {}, {}
local out = {}
-- The ids' directory fields, read in one HMGET (a few hundred at a time: Lua's unpack has a
-- limit) rather than one HGET each.
local ids, stored = {}, {}
for at = 4, #ARGV, 5 do ids[#ids + 1] = ARGV[at] end
for first = 1, #ids, 512 do
  local last = math.min(first + 511, #ids)
  local values = redis.call('HMGET', dir, unpack(ids, first, last))
  for i = first, last do stored[i] = values[i - first + 1] end
end
for i = 4, #KEYS, 2 do
  local old, list, at = KEYS[i], KEYS[i + 1], 1 + (i - 4) / 2 * 5
  local claim, body, id = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local held = legacy and redis.call('GET', old)
  if not held then held = claimed[id] or stored[(i - 2) / 2] end
  if held then
    if string.sub(held, 1, 1) == 'P' then out[#out + 1] = held else out[#out + 1] = 'D' end
  else
    claimed[id] = 'P' .. claim .. '\t' .. body
    claims[#claims + 1] = id
    claims[#claims + 1] = claimed[id]
    local ids = joined[list]
    if not ids then
      ids = {}
      joined[list] = ids
      lists[#lists + 1] = { list, ARGV[at + 4], tonumber(ARGV[at + 5]) }
    end
    ids[#ids + 1] = id
    out[#out + 1] = 'C'
  end
end
for first = 1, #claims, 512 do
  redis.call('HSET', dir, unpack(claims, first, math.min(first + 511, #claims)))
end
for _, list in ipairs(lists) do
  local key, ends, keep = list[1], list[2], list[3]
  local ids = joined[key]
  for first = 1, #ids, 512 do
    redis.call('RPUSH', key, unpack(ids, first, math.min(first + 511, #ids)))
  end
  redis.call('ZADD', index, ends, key)
  keep_at_least(key, keep)
end
if #lists > 0 then keep_at_least(dir, tonumber(ARGV[1])) end
return out
