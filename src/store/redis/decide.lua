-- banditd: the epoch's stopping decision, written once (first wins); returns the one held.
-- KEYS[1] the epoch's facts hash.
redis.call('HSETNX', KEYS[1], 'decision', ARGV[1])
return redis.call('HGET', KEYS[1], 'decision')
