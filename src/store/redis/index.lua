-- banditd: moves new units' names from one shard's list (KEYS[1], appended by apply.lua) into
-- its unit index (KEYS[2], a sorted set of names, all scores 0), at most ARGV[1] of them, in one
-- atomic call: a name is in the list or in the index, never lost between them (a new unit's
-- record and its name are written by one apply.lua call). Returns how many names the list
-- still holds. Called before a page of an export is read (src/store/redis/sticky_read.rs).
local names = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #names == 0 then return 0 end
local args = {}
for _, unit in ipairs(names) do
  args[#args + 1] = '0'
  args[#args + 1] = unit
  if #args == 1024 then
    redis.call('ZADD', KEYS[2], unpack(args))
    args = {}
  end
end
if #args > 0 then redis.call('ZADD', KEYS[2], unpack(args)) end
redis.call('LTRIM', KEYS[1], #names, -1)
return redis.call('LLEN', KEYS[1])
