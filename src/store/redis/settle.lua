-- banditd: settles claims whose rewards were judged (src/store/redis/rewards.rs): an applied
-- one keeps its id (`A`, same expiry), a refused one frees it, so a later event with that id
-- is judged afresh. A claim already settled, or replaced, is left alone.
-- KEYS[1] the due index of this event-id shard, KEYS[2..] event keys; ARGV, two per key:
-- claim id, `1` if applied else `0`.
local due = KEYS[1]
for i = 2, #KEYS do
  local key, at = KEYS[i], (i - 2) * 2
  local mine = 'P' .. ARGV[at + 1] .. '\t'
  local held = redis.call('GET', key)
  if held and string.sub(held, 1, #mine) == mine then
    if ARGV[at + 2] == '1' then
      redis.call('SET', key, 'A', 'KEEPTTL')
    else
      redis.call('DEL', key)
      redis.call('ZREM', due, key)
    end
  end
end
return 0
