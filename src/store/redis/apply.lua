-- banditd: one shard's writes of one group commit, applied atomically (src/store/redis/commit.rs).
-- Records and the counters they imply change in this one script call, so they always agree.
-- Every key is in this shard's slot (src/store/redis/layout.rs, "the slot rule").
--
-- KEYS[1] sticky zset, KEYS[2] arms hash, KEYS[3] token marks zset, KEYS[4] marks' due zset,
-- KEYS[5] delay histograms hash, KEYS[6..] flush and claim keys, named by index in the ops.
-- ARGV[1] max clock skew (ms), ARGV[2] mark slack (ms), then ops (see commit.rs, `Call`).
-- One reply string per I/R/U/T op, in order.
local sticky, arms, marks, due, delays = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local skew, slack = tonumber(ARGV[1]), tonumber(ARGV[2])
local SEP = '\0'
local MICRO = 1000000
local out = {}
local at = 3
local function nxt()
  local value = ARGV[at]
  at = at + 1
  return value
end

local function find(zkey, id)
  local hit = redis.call('ZRANGEBYLEX', zkey, '[' .. id .. SEP, '(' .. id .. '\1', 'LIMIT', 0, 1)
  if hit[1] then
    return hit[1], string.sub(hit[1], #id + 2)
  end
  return nil, nil
end

-- variant, assigned, propensity, reward micro ('' until rewarded), then the reward's arrival
-- once rewarded (records written before it was kept have four fields).
local function parse(record)
  local v, assigned, propensity, reward = string.match(record,
    '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t[^\t]*$')
  if v then return v, assigned, propensity, reward end
  return string.match(record, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$')
end

-- stats::decay_weight: 2^(-age/h); exactly 1 at age 0, 0 for a zero half-life.
local function weight(age, h)
  if age <= 0 then return 1 end
  if h == 0 then return 0 end
  return math.pow(2, -age / h)
end

local function int(x) return string.format('%d', x) end

local function num(field, default)
  return tonumber(redis.call('HGET', arms, field) or default)
end

-- store::decay::record_change + stats::DecayedCounts::add on this shard's share of arm v,
-- called before the raw counters change. h == '' : no half-life (decayed = raw).
local function decay(v, now, h, dn, dr)
  local ft, fh = 'dt|' .. v, 'h|' .. v
  local t = num(ft, '0')
  if h == '' then
    redis.call('HSET', arms, fh, '-')
    if now > t then redis.call('HSET', arms, ft, int(now)) end
    return
  end
  local hv = tonumber(h)
  local en, er
  if (redis.call('HGET', arms, fh) or '-') == '-' then
    en = num('n|' .. v, '0')
    er = num('r|' .. v, '0') / MICRO
  else
    en = num('dn|' .. v, '0')
    er = num('dr|' .. v, '0')
  end
  if now > t then
    local w = weight(now - t, hv)
    en, er, t = en * w, er * w, now
  end
  local w = weight(t - now, hv)
  en = en + dn * w
  er = er + dr * w
  redis.call('HSET', arms, 'dn|' .. v, string.format('%.17g', en), 'dr|' .. v,
    string.format('%.17g', er), ft, int(t), fh, h)
end

-- store::delay_histograms: the cohort of an exposure counted at `now`, and the delay bin of a
-- reward (stats::delay_bin: the fine edges of the first hour, then hours). Checked against
-- the worked cases of store::rule_cases (src/store/redis/rules_tests.rs).
local HOUR = 3600000
local FINE = {60000, 120000, 300000, 600000, 1200000, 1800000, 2700000}
local function delay_bin(delay)
  if delay < 0 then delay = 0 end
  if delay >= HOUR then return 8 + math.floor(delay / HOUR) - 1 end
  local bin = 0
  for _, edge in ipairs(FINE) do
    if edge <= delay then bin = bin + 1 end
  end
  return bin
end

local function cohort(v, n, now)
  redis.call('HINCRBY', delays, 'c|' .. int(math.floor(now / HOUR)) .. '|' .. v, int(n))
end

local function delayed(v, micro, assigned, now)
  redis.call('HINCRBY', delays, 'd|' .. int(delay_bin(now - assigned)) .. '|' .. v, int(micro))
end

local function expected(count)
  for _ = 1, count do
    local v, micro = nxt(), nxt()
    redis.call('HINCRBY', arms, 'e|' .. v, micro)
  end
end

local function count_exposures(v, n, now, h)
  decay(v, now, h, n, 0)
  redis.call('HINCRBY', arms, 'n|' .. v, int(n))
  cohort(v, n, now)
  redis.call('HSETNX', arms, 's', int(now))
end

local function credit(v, micro, assigned, now, h)
  local dr = micro / MICRO
  if h ~= '' then dr = dr * weight(now - assigned, tonumber(h)) end
  decay(v, now, h, 0, dr)
  redis.call('HINCRBY', arms, 'r|' .. v, int(micro))
  delayed(v, micro, assigned, now)
  redis.call('HSETNX', arms, 's', int(now))
end

-- A reward's timing against its assignment (store::apply::timing_refusal).
local function refusal(occurred, assigned, now, window)
  if occurred ~= '' and tonumber(occurred) + skew < assigned then return 'B' end
  if now > assigned + window then return 'O' end
  return nil
end

-- A claimed reward (src/store/redis/rewards.rs) is judged once: its outcome is kept under its
-- claim, and a second application of the same claim (a helper finishing it) returns that.
local function claimed(key, keep, judge)
  local held = redis.call('GET', key)
  if held then return held end
  local outcome = judge()
  redis.call('SET', key, outcome, 'PX', keep)
  return outcome
end

local skip_exposures = false
while at <= #ARGV do
  local op = nxt()
  if op == 'I' or op == 'R' then
    local unit, from, v, assigned, propensity = nxt(), nxt(), nxt(), nxt(), nxt()
    local now, h, shares = tonumber(nxt()), nxt(), tonumber(nxt())
    local member, record = find(sticky, unit)
    local write = false
    if op == 'I' then
      if member then out[#out + 1] = '0' .. record else write = true end
    elseif not member then
      out[#out + 1] = '-'
    else
      local held, _, _, reward = parse(record)
      if held ~= from then
        out[#out + 1] = '0' .. record
      else
        redis.call('HINCRBY', arms, 'mn|' .. held, 1)
        if reward ~= '' then redis.call('HINCRBY', arms, 'mr|' .. held, reward) end
        redis.call('ZREM', sticky, member)
        write = true
      end
    end
    if write then
      local value = v .. '\t' .. assigned .. '\t' .. propensity .. '\t'
      redis.call('ZADD', sticky, 0, unit .. SEP .. value)
      count_exposures(v, 1, now, h)
      expected(shares)
      out[#out + 1] = '1' .. value
    else
      at = at + 2 * shares
    end
  elseif op == 'F' then
    -- A flush of per-request exposures: applied once, however often it is retried.
    local key = KEYS[tonumber(nxt())]
    skip_exposures = not redis.call('SET', key, '1', 'NX', 'PX', 86400000)
  elseif op == 'X' then
    local v, n, now, h, shares = nxt(), tonumber(nxt()), tonumber(nxt()), nxt(), tonumber(nxt())
    if skip_exposures then
      at = at + 2 * shares
    else
      count_exposures(v, n, now, h)
      redis.call('HINCRBY', arms, 'p|' .. v, int(n))
      expected(shares)
    end
  elseif op == 'U' then
    local claim, unit = KEYS[tonumber(nxt())], nxt()
    local micro, occurred = nxt(), nxt()
    local now, window, h, keep = tonumber(nxt()), tonumber(nxt()), nxt(), nxt()
    out[#out + 1] = claimed(claim, keep, function()
      local member, record = find(sticky, unit)
      if not member then return 'N' end
      local v, assigned, propensity, reward = parse(record)
      assigned = tonumber(assigned)
      local refused = refusal(occurred, assigned, now, window)
      if refused then return refused end
      if reward ~= '' then return 'P' end
      redis.call('ZREM', sticky, member)
      redis.call('ZADD', sticky, 0,
        unit .. SEP .. v .. '\t' .. int(assigned) .. '\t' .. propensity .. '\t' .. micro ..
        '\t' .. int(now))
      credit(v, tonumber(micro), assigned, now, h)
      return 'A' .. v
    end)
  elseif op == 'T' then
    local claim, id, v = KEYS[tonumber(nxt())], nxt(), nxt()
    local issued, propensity = tonumber(nxt()), nxt()
    local micro, occurred, now, window = nxt(), nxt(), tonumber(nxt()), tonumber(nxt())
    local h, keep = nxt(), nxt()
    out[#out + 1] = claimed(claim, keep, function()
      if find(marks, id) then return 'P' end
      local refused = refusal(occurred, issued, now, window)
      local expiry = issued + window + slack
      if not refused and expiry <= num('xt', '0') then refused = 'O' end
      if refused then return refused end
      redis.call('ZADD', marks, 0,
        id .. SEP .. v .. '\t' .. int(issued) .. '\t' .. propensity .. '\t' .. micro .. '\t' ..
        int(expiry) .. '\t' .. int(now))
      redis.call('ZADD', due, int(expiry), id)
      redis.call('HINCRBY', arms, 't|' .. v, micro)
      credit(v, tonumber(micro), issued, now, h)
      return 'A' .. v
    end)
  else
    return redis.error_reply('banditd: unknown op ' .. tostring(op))
  end
end
return out
