-- banditd: removes one shard's token marks due at or before ARGV[1] (ms) and raises the
-- shard's watermark, so a late retry of a removed mark is refused rather than credited twice
-- (store::apply::apply_token_reward). The credited rewards stay in the arm's `t|v` total.
-- Confirmation marks (per-request on_render tokens) go the same way; their exposures stay in
-- the arm's `p|v` count.
-- KEYS[1] token marks zset, KEYS[2] marks' due zset, KEYS[3] arms hash, KEYS[4] confirmation
-- marks zset, KEYS[5] their due zset.
local marks, due, arms = KEYS[1], KEYS[2], KEYS[3]
local now = ARGV[1]
local removed = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now)) do
  local hit = redis.call('ZRANGEBYLEX', marks, '[' .. id .. '\0', '(' .. id .. '\1', 'LIMIT', 0, 1)
  if hit[1] then redis.call('ZREM', marks, hit[1]) end
  redis.call('ZREM', due, id)
  removed = removed + 1
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)) do
  local hit = redis.call('ZRANGEBYLEX', KEYS[4], '[' .. id .. '\0', '(' .. id .. '\1', 'LIMIT', 0, 1)
  if hit[1] then redis.call('ZREM', KEYS[4], hit[1]) end
  redis.call('ZREM', KEYS[5], id)
  removed = removed + 1
end
if tonumber(redis.call('HGET', arms, 'xt') or '0') < tonumber(now) then
  redis.call('HSET', arms, 'xt', now)
end
return removed
