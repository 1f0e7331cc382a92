-- banditd: stores one history point at ARGV[1] (ms), replacing a point at the same time, unless
-- another point already lies in the same interval of ARGV[2] ms (0: no intervals): replicas
-- that each record history every interval leave one point per interval, not one each.
-- KEYS[1] the history zset (score: time; member: time \t point).
local key, at, interval = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
if interval > 0 then
  local low = at - at % interval
  local hit = redis.call('ZRANGEBYSCORE', key, low, '(' .. string.format('%d', low + interval),
    'WITHSCORES', 'LIMIT', 0, 1)
  if hit[1] and tonumber(hit[2]) ~= at then return 0 end
end
redis.call('ZREMRANGEBYSCORE', key, ARGV[1], ARGV[1])
redis.call('ZADD', key, ARGV[1], ARGV[1] .. '\t' .. ARGV[3])
return 1
