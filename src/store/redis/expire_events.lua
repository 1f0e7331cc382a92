-- banditd: forgets one event-id shard's ids whose retention (arrival + reward window, by the
-- engine's clock) is at or before ARGV[1] (ms). Returns how many.
-- KEYS[1] the shard's due index (score: retention end; member: the event key).
local due = KEYS[1]
local removed = 0
for _, key in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[1])) do
  redis.call('DEL', key)
  redis.call('ZREM', due, key)
  removed = removed + 1
end
return removed
