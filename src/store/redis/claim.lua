-- banditd: claims event ids for rewards about to be applied (src/store/redis/rewards.rs).
-- KEYS[1] the due index of this event-id shard, KEYS[2..] one event key per reward (a key may
-- repeat). ARGV, four per reward: claim id, the reward as the apply step needs it, how long
-- Redis keeps the key at most (ms), when the engine's clock may forget it (ms).
-- One reply per reward: `C` claimed now; `D` applied before; else the pending claim
-- (`P<claim>\t<reward>`) that must be finished first.
local due = KEYS[1]
local out = {}
for i = 2, #KEYS do
  local key, at = KEYS[i], (i - 2) * 4
  local claim, body, keep, retain = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
  local held = redis.call('GET', key)
  if not held then
    redis.call('SET', key, 'P' .. claim .. '\t' .. body, 'PX', keep)
    redis.call('ZADD', due, retain, key)
    out[#out + 1] = 'C'
  elseif string.sub(held, 1, 1) == 'P' then
    out[#out + 1] = held
  else
    out[#out + 1] = 'D'
  end
end
return out
