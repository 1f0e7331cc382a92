-- banditd: settles claims whose rewards were judged (src/store/redis/rewards.rs): an applied
-- one keeps its id (`A<retention end>`, so the sweep can tell it from a later claim of the same
-- id), a refused one frees it, so a later event with that id is judged afresh. A claim already
-- settled, or replaced, is left alone.
-- KEYS[1] the directory of this event-id shard, KEYS[2] its legacy due index, then one per
-- claim: the id's legacy key. ARGV, four per claim: claim id, `1` if applied else `0`, the
-- event id, its retention end (ms).
local dir, legacy_due = KEYS[1], KEYS[2]
local legacy = redis.call('EXISTS', legacy_due) == 1
-- The directory's changes, written once at the end (each write command is an AOF record).
local kept, freed = {}, {}
-- The ids' directory fields, read in one HMGET (a few hundred at a time) rather than one HGET
-- each; ids settled twice in one call (a claim met by two ops) are read as they were.
local ids, stored = {}, {}
for at = 3, #ARGV, 4 do ids[#ids + 1] = ARGV[at] end
for first = 1, #ids, 512 do
  local last = math.min(first + 511, #ids)
  local values = redis.call('HMGET', dir, unpack(ids, first, last))
  for i = first, last do stored[i] = values[i - first + 1] end
end
for i = 3, #KEYS do
  local old, at = KEYS[i], (i - 3) * 4
  local mine = 'P' .. ARGV[at + 1] .. '\t'
  local applied, id, retain = ARGV[at + 2] == '1', ARGV[at + 3], ARGV[at + 4]
  local held = legacy and redis.call('GET', old)
  if held then
    if string.sub(held, 1, #mine) == mine then
      if applied then
        redis.call('SET', old, 'A', 'KEEPTTL')
      else
        redis.call('DEL', old)
        redis.call('ZREM', legacy_due, old)
      end
    end
  else
    held = stored[i - 2]
    if held and string.sub(held, 1, #mine) == mine then
      if applied then
        kept[#kept + 1] = id
        kept[#kept + 1] = 'A' .. retain
      else
        freed[#freed + 1] = id
      end
    end
  end
end
for first = 1, #kept, 512 do
  redis.call('HSET', dir, unpack(kept, first, math.min(first + 511, #kept)))
end
for first = 1, #freed, 512 do
  redis.call('HDEL', dir, unpack(freed, first, math.min(first + 511, #freed)))
end
return 0
