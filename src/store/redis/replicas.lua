-- The live replica reports (see replicas.rs), deleting the expired ones first.
-- KEYS[1] reports hash (id -> JSON), KEYS[2] expiry sorted set (id scored by expiry, Unix ms).
-- ARGV[1] now (Unix ms). Returns the JSON of every live report, in id order.
local reports, expiry, now = KEYS[1], KEYS[2], ARGV[1]
local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
for _, id in ipairs(dead) do
  redis.call('HDEL', reports, id)
end
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now)
end
local live = redis.call('ZRANGEBYSCORE', expiry, '(' .. now, '+inf')
table.sort(live)
local out = {}
for _, id in ipairs(live) do
  local report = redis.call('HGET', reports, id)
  if report then
    out[#out + 1] = report
  end
end
return out
