-- banditd: one epoch fact (ARGV[1]: `decision`, `start`, or a guardrail halt's `metric/arm` in
-- the halts hash, src/store/redis/halts.rs), written once (first wins);
-- returns the one held. KEYS[1] the epoch's facts hash.
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
