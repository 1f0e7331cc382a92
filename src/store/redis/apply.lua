-- banditd: one epoch's writes of one group commit, applied atomically (src/store/redis/commit.rs):
-- one shard's under Cluster, where every key of a call is in that shard's slot
-- (src/store/redis/layout.rs, "the slot rule"), every shard's on a single primary.
-- Records and the counters they imply change in this one script call, so they always agree.
--
-- KEYS[1] legacy sticky zset, KEYS[2] arms hash, KEYS[3] token marks zset, KEYS[4] marks' due
-- zset, KEYS[5] sticky records hash, KEYS[6] new units' list (not yet in the unit index),
-- KEYS[7] delay histograms hash,
-- KEYS[8..] flush and claim keys, named by index in the ops, and, where one call carries
-- several shards of the epoch (a single primary, not Cluster), the legacy sticky, arms, marks,
-- due, records and new units' list keys of each further shard, which op `S` switches to (and
-- each packed sticky op of op `N` and reward of op `B` names).
-- ARGV[1] max clock skew (ms), ARGV[2] mark slack (ms), then ops (see call.rs, `Call`).
-- One reply string per I/R/U/T/K/C op (I and R packed in op N), one for op B, in order.
-- The three files are one library (src/store/redis/scripts.rs): loaded once per primary as a
-- Redis function (`FUNCTION LOAD`, called by `FCALL`), its ~60 functions and constants are made
-- once, not at every call as an `EVALSHA` makes a script's; only the per-call state below is
-- made again, by `begin_apply` and `begin_rewards`, which `run` (apply_ops.lua) calls first.
-- Where Functions are missing (Redis before 7.0) the same text runs by `EVALSHA`, which hands
-- `run` its KEYS and ARGV. Every call is atomic and Redis runs one at a time, so state kept
-- between calls is never shared by two; nothing a call leaves is read by the next.
-- Lua 5.1 finds a global by a hash lookup at every use (and a library function by two): the
-- libraries and functions a call uses for every event are locals of the script instead
-- (benches/load/results/rbulk4-2026-11-30-s9.md counts what that saves). They are taken at
-- the start of each call (`begin_apply`), not when the library loads: Redis lets a library's
-- loading see `redis.register_function` alone, and a call sees the full `redis` API.
local function libraries()
  return redis, string, math, struct, tonumber, ipairs, unpack
end
-- The global `redis`, for the library's registration (src/store/redis/scripts.rs).
local function redis_api()
  return redis
end
local redis, string, math, struct, tonumber, ipairs, unpack
local KEYS, ARGV
local sticky, arms, marks, due, delays, records, pending
-- Op `S` sends the ops that follow to another shard's records and marks; the counters and
-- histograms stay in the call's first shard (`arms`, `delays`), which readers and the audit
-- sum with the other shards', so a call of units of eight shards writes one counter hash, not
-- eight. Only the marks' watermark is the shard's own (its arms hash's `xt`, see `watermark`).
local shard_arms
local function use_shard(first)
  sticky, shard_arms, marks, due = KEYS[first], KEYS[first + 1], KEYS[first + 2], KEYS[first + 3]
  records, pending = KEYS[first + 4], KEYS[first + 5]
end
local skew, slack
local SEP = '\0'
local MICRO = 1000000
local out, at
local function nxt()
  local value = ARGV[at]
  at = at + 1
  return value
end

-- The sorted sets (records, marks and their due sets) are read and written through a buffer
-- too, and written once at the end of the call (`write_zsets`: one ZREM and one ZADD per set):
-- each write command is an AOF record and a pass of Redis's write path, so a call of a hundred
-- rewards would otherwise rewrite its records in two hundred commands. `held` is what this
-- call has left under an id (false: none), so a later op of the call sees the earlier ones.
local zsets, zorder
local function zbuf(key)
  local z = zsets[key]
  if not z then
    z = { held = {}, gone = {}, add = {}, order = {} }
    zsets[key] = z
    zorder[#zorder + 1] = key
  end
  return z
end

-- The member of `id` in a set whose members are `id \0 value` (all scores 0), and its value.
local function find(zkey, id)
  local z = zbuf(zkey)
  local member = z.held[id]
  if member == nil then
    -- LIMIT's numbers as strings: Redis formats a Lua number argument with printf.
    local hit = redis.call('ZRANGEBYLEX', zkey, '[' .. id .. SEP, '(' .. id .. '\1', 'LIMIT', '0', '1')
    member = hit[1] or false
    z.held[id] = member
  end
  if member then
    return member, string.sub(member, #id + 2)
  end
  return nil, nil
end

-- Adds `member` with `score` (replacing `old`, the id's member found before, if any); `id`
-- names it for `find` (nil for the due sets, which are never read here).
local function zput(zkey, id, old, member, score)
  local z = zbuf(zkey)
  if old then
    if z.add[old] ~= nil then z.add[old] = nil else z.gone[#z.gone + 1] = old end
  end
  if z.add[member] == nil then z.order[#z.order + 1] = member end
  z.add[member] = score
  if id then z.held[id] = member end
end

local function write_zsets()
  for _, key in ipairs(zorder) do
    local z = zsets[key]
    for first = 1, #z.gone, 512 do
      redis.call('ZREM', key, unpack(z.gone, first, math.min(first + 511, #z.gone)))
    end
    local args, written = {}, {}
    for _, member in ipairs(z.order) do
      local score = z.add[member]
      if score ~= nil and not written[member] then
        written[member] = true
        args[#args + 1] = score
        args[#args + 1] = member
        if #args == 512 then
          redis.call('ZADD', key, unpack(args))
          args = {}
        end
      end
    end
    if #args > 0 then redis.call('ZADD', key, unpack(args)) end
  end
end

-- variant, assigned, propensity, reward micro ('' until rewarded), then the reward's arrival
-- once rewarded (records written before it was kept have four fields).
-- The four-field form is tried first: it is every record a reward can still credit.
local function parse(record)
  local v, assigned, propensity, reward = string.match(record,
    '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$')
  if v then return v, assigned, propensity, reward end
  v, assigned, propensity, reward = string.match(record,
    '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t[^\t]*$')
  return v, assigned, propensity, reward
end

-- The record as `judge_unit` needs it, found with three or four plain searches for its tabs
-- instead of `parse`'s captures (a string each): its variant, its assignment time as
-- written, its first three fields with their tabs (`v \t assigned \t propensity \t`, what a
-- credited record starts with), and whether it holds a reward. nil when the record has
-- other than four or five fields (`parse` then says what it can).
local function split(record)
  local t1 = string.find(record, '\t', 1, true)
  if not t1 then return nil end
  local t2 = string.find(record, '\t', t1 + 1, true)
  if not t2 then return nil end
  local t3 = string.find(record, '\t', t2 + 1, true)
  if not t3 then return nil end
  local t4 = string.find(record, '\t', t3 + 1, true)
  if t4 and string.find(record, '\t', t4 + 1, true) then return nil end
  -- The reward field is empty when the record ends after its third tab or a fourth follows.
  return string.sub(record, 1, t1 - 1), string.sub(record, t1 + 1, t2 - 1),
    string.sub(record, 1, t3), t3 < #record and t4 ~= t3 + 1
end

-- stats::decay_weight: 2^(-age/h); exactly 1 at age 0, 0 for a zero half-life.
local function weight(age, h)
  if age <= 0 then return 1 end
  if h == 0 then return 0 end
  return math.pow(2, -age / h)
end

-- string.format is a good share of a call's Lua time, and a call of a batch formats one
-- clock reading over and over: the last number formatted is kept.
local last_int, last_text
local function int(x)
  if x ~= last_int then last_int, last_text = x, string.format('%d', x) end
  return last_text
end

-- The arms hash is read and written through this buffer, and written back once at the end of
-- the call (`write_arms`): Redis replicates a script's effects, so every write command is one
-- AOF record, and a call of a hundred events would otherwise write each arm's counters a
-- hundred times. Counters (`add`) and values (`put`) live in separate fields; read a field
-- with `get` (never with a direct HGET, which would miss what this call has not written yet).
local loaded, delta, value, order
local function stored(field)
  local v = loaded[field]
  if v == nil then
    v = redis.call('HGET', arms, field) or false
    loaded[field] = v
  end
  return v
end
local function touch(field)
  if delta[field] == nil and value[field] == nil then order[#order + 1] = field end
end
local function get(field)
  if value[field] ~= nil then return value[field] end
  local v = stored(field)
  if delta[field] then return int((tonumber(v) or 0) + delta[field]) end
  return v or nil
end
local function put(field, v)
  touch(field)
  value[field] = v
end
local function add(field, n)
  touch(field)
  delta[field] = (delta[field] or 0) + n
end
-- Integers below 2^53 add exactly in Lua's doubles; beyond, HINCRBY does it (or refuses).
local EXACT = 2 ^ 53
-- Scratch arrays for a command's arguments, kept from call to call: a table made empty and
-- filled grows by rehashing at every power of two (each rehash a few hundred machine
-- instructions and a reallocation), and a call made one such table per shard and write.
-- Only entries 1..n this call wrote are read (every use passes its own count `n` to
-- `unpack`), so what an earlier call left beyond them is never seen.
-- (benches/load/results/rlua15-2026-12-01-s15.md counts what this saves.)
local scratch_a, scratch_b = {}, {}
-- HSET of the first `n` field/value entries of `args`, a few hundred at a time (Lua's unpack
-- has a limit).
local function hset(key, args, n)
  for first = 1, n, 512 do
    redis.call('HSET', key, unpack(args, first, math.min(first + 511, n)))
  end
end
local function write_arms()
  local unread, m = scratch_a, 0
  for i = 1, #order do
    local field = order[i]
    if delta[field] and loaded[field] == nil then
      m = m + 1
      unread[m] = field
    end
  end
  for first = 1, m, 512 do
    local last = math.min(first + 511, m)
    local values = redis.call('HMGET', arms, unpack(unread, first, last))
    for i = first, last do loaded[unread[i]] = values[i - first + 1] or false end
  end
  local args, n = scratch_b, 0
  for i = 1, #order do
    local field = order[i]
    local v = value[field]
    if delta[field] then
      local old = tonumber(loaded[field] or '0')
      local new = old and old + delta[field]
      if new and math.abs(old) < EXACT and math.abs(new) < EXACT then
        v = int(new)
      else
        redis.call('HINCRBY', arms, field, int(delta[field]))
      end
    end
    if v and v ~= loaded[field] then
      args[n + 1] = field
      args[n + 2] = v
      n = n + 2
    end
  end
  hset(arms, args, n)
end

local function num(field, default)
  return tonumber(get(field) or default)
end

-- Sticky records are fields of the shard's records hash (unit -> record), so a lookup is one
-- HGET (or one HMGET for a call's units, op `P` and op `B`) and a rewrite one HSET per call and
-- shard; a new unit's name is appended to the shard's list of units not yet indexed (one RPUSH
-- per call and shard), which a page of an export moves into the unit index (index.lua: a
-- sorted set of unit names, all scores 0, paging in unit order), so the commit does not pay a
-- sorted-set insert per new unit. Records of the earlier layout (members
-- `unit \0 record` of the legacy sorted set) are still found there while it holds any, and
-- move to the hash (and the index) when rewritten. `held[unit]`: the unit's record as this call
-- has left it (false: none; nil: not read yet).
-- A call is one epoch's, where a unit has one shard, so what the buffers hold by unit (`held`,
-- `put`, `fresh`, `moved`) is one table each for the whole call, shared by every shard's
-- buffer; only the order of a shard's writes is the shard's own. (A call of units of eight
-- shards made six tables per shard; each table costs Redis's Lua about a thousand machine
-- instructions to make and more to grow.)
local rsets, rorder
local held_units, put_units, fresh_units, moved_units
local function rbuf()
  local r = rsets[records]
  if not r then
    -- `order` is made with room for eight units (see `begin_apply`'s `out`).
    r = { key = records, legacy = sticky, pending = pending, held = held_units,
      put = put_units, order = { nil, nil, nil, nil, nil, nil, nil, nil }, fresh = fresh_units,
      moved = moved_units, has_legacy = nil }
    rsets[records] = r
    rorder[#rorder + 1] = r
  end
  return r
end
local function has_legacy(r)
  if r.has_legacy == nil then
    r.has_legacy = redis.call('EXISTS', r.legacy) == 1
  end
  return r.has_legacy
end
-- The legacy record of `unit`, remembered so that its rewrite removes the legacy member.
local function legacy_record(r, unit)
  if not has_legacy(r) then return false end
  local hit = redis.call('ZRANGEBYLEX', r.legacy, '[' .. unit .. SEP, '(' .. unit .. '\1', 'LIMIT', '0', '1')
  local member = hit[1]
  if not member then return false end
  r.moved[unit] = member
  return string.sub(member, #unit + 2)
end
-- Reads the records of `names` (the current shard's units) not read yet, one HMGET.
local function prefetch(names)
  local r = rbuf()
  local held, wanted, n = r.held, scratch_a, 0
  -- `false` marks a unit asked for (a name may come twice); the HMGET below replaces it.
  -- (Numeric loops over a call's units: `ipairs` is a C call per unit.)
  for i = 1, #names do
    local unit = names[i]
    if held[unit] == nil then
      held[unit] = false
      n = n + 1
      wanted[n] = unit
    end
  end
  for first = 1, n, 512 do
    local last = math.min(first + 511, n)
    local values = redis.call('HMGET', r.key, unpack(wanted, first, last))
    for i = first, last do
      local value = values[i - first + 1]
      -- The legacy set is asked about once per shard and call (`has_legacy`), and only when
      -- a unit is not in the hash: a new unit's every lookup.
      if not value and r.has_legacy ~= false then value = legacy_record(r, wanted[i]) end
      held[wanted[i]] = value or false
    end
  end
end
-- The current shard's record of `unit`, or nil.
local function rget(unit)
  local r = rbuf()
  local record = r.held[unit]
  if record == nil then
    record = redis.call('HGET', r.key, unit) or legacy_record(r, unit)
    r.held[unit] = record
  end
  return record or nil
end
local function rset(unit, record)
  local r = rbuf()
  if r.held[unit] == nil then rget(unit) end
  if not r.held[unit] or r.moved[unit] then r.fresh[unit] = true end
  if r.put[unit] == nil then r.order[#r.order + 1] = unit end
  r.put[unit] = record
  r.held[unit] = record
end
-- The current shard's token watermark (expire.lua raises it; this script only reads it).
local watermarks
local function watermark()
  local w = watermarks[shard_arms]
  if w == nil then
    w = tonumber(redis.call('HGET', shard_arms, 'xt') or '0')
    watermarks[shard_arms] = w
  end
  return w
end

-- Reward amounts (micro-units, as the packed rewards spell them) as numbers: a batch's
-- rewards mostly carry one amount, parsed once.
local amounts
local function amount(micro)
  local n = amounts[micro]
  if n == nil then
    n = tonumber(micro)
    amounts[micro] = n
  end
  return n
end

-- The counter fields of arm v, built once per variant: a batch of rewards would otherwise
-- build (and Lua intern) the same half-dozen names again for every reward. The names depend on
-- v alone, so their table is kept from call to call (`field_tables`, emptied past
-- FIELD_TABLES variants): a call used to build eight names and a table per variant it met.
-- The table also holds `decay`'s per-call state (`t`, `plain`), cleared when a call first
-- takes it: a call reaches it only through its own `arm_fields`, which `fields_of` fills.
-- `applied_outcomes`: the outcomes `A<variant>` made so far, so that op B tells an applied
-- reward by one table lookup (not a `string.byte` call per reward).
local arm_fields, applied_outcomes
local field_tables, field_tables_n, FIELD_TABLES = {}, 0, 1024
local function fields_of(v)
  local f = arm_fields[v]
  if not f then
    f = field_tables[v]
    if f then
      f.t, f.plain = nil, nil
    else
      f = { dt = 'dt|' .. v, h = 'h|' .. v, n = 'n|' .. v, r = 'r|' .. v, dn = 'dn|' .. v,
        dr = 'dr|' .. v, e = 'e|' .. v, applied = 'A' .. v, t = nil, plain = nil }
      if field_tables_n >= FIELD_TABLES then field_tables, field_tables_n = {}, 0 end
      field_tables[v] = f
      field_tables_n = field_tables_n + 1
    end
    arm_fields[v] = f
    applied_outcomes[f.applied] = true
  end
  return f
end

-- store::decay::record_change + stats::DecayedCounts::add on this shard's share of arm v,
-- called before the raw counters change. h == '' : no half-life (decayed = raw).
local function decay(v, now, h, dn, dr)
  local f = fields_of(v)
  local ft, fh = f.dt, f.h
  -- `f.t`: the time this call last left in `dt|v` when it is the number read back from it
  -- (a whole millisecond); saves parsing the field again for each event of a batch.
  -- Nothing to do for a second exposure at the same time without a half-life (`f.plain`: this
  -- call left `h|v` at '-' and `dt|v` at `t`).
  if h == '' and f.plain and f.t == now then return end
  local t = f.t or num(ft, '0')
  if h == '' then
    put(fh, '-')
    f.plain = true
    if now > t then
      t = now
      put(ft, int(now))
    end
    if t == math.floor(t) then f.t = t else f.t = nil end
    return
  end
  f.t, f.plain = nil, nil
  local hv = tonumber(h)
  local en, er
  if (get(fh) or '-') == '-' then
    en = num(f.n, '0')
    er = num(f.r, '0') / MICRO
  else
    en = num(f.dn, '0')
    er = num(f.dr, '0')
  end
  if now > t then
    local w = weight(now - t, hv)
    en, er, t = en * w, er * w, now
  end
  local w = weight(t - now, hv)
  en = en + dn * w
  er = er + dr * w
  put(f.dn, string.format('%.17g', en))
  put(f.dr, string.format('%.17g', er))
  put(ft, int(t))
  put(fh, h)
end

-- store::delay_histograms: the cohort of an exposure counted at `now`, and the delay bin of a
-- reward (stats::delay_bin: the fine edges of the first hour, then hours). Checked against
-- the worked cases of store::rule_cases (src/store/redis/rules_tests.rs).
local HOUR = 3600000
local FINE = {60000, 120000, 300000, 600000, 1200000, 1800000, 2700000}
-- The edges ascend, so the count stops at the first edge past the delay (a numeric loop:
-- `ipairs` is a C call per edge, most of a reward's bin for the usual short delay).
local function delay_bin(delay)
  if delay < 0 then delay = 0 end
  if delay >= HOUR then return 8 + math.floor(delay / HOUR) - 1 end
  local bin = 0
  for i = 1, #FINE do
    if FINE[i] > delay then break end
    bin = i
  end
  return bin
end

-- The histograms are buffered like the arms hash (`write_delays`, once per call): a call of a
-- hundred events adds to a few bins, not a hundred times.
local dorder, ddelta
local function dadd(field, n)
  if ddelta[field] == nil then
    dorder[#dorder + 1] = field
    ddelta[field] = 0
  end
  ddelta[field] = ddelta[field] + n
end
local function write_delays()
  local args, n = scratch_a, 0
  for first = 1, #dorder, 512 do
    local last = math.min(first + 511, #dorder)
    local values = redis.call('HMGET', delays, unpack(dorder, first, last))
    for i = first, last do
      local field = dorder[i]
      local old = tonumber(values[i - first + 1] or '0')
      local new = old and old + ddelta[field]
      if new and math.abs(old) < EXACT and math.abs(new) < EXACT then
        args[n + 1] = field
        args[n + 2] = int(new)
        n = n + 2
      else
        redis.call('HINCRBY', delays, field, int(ddelta[field]))
      end
    end
  end
  hset(delays, args, n)
end

-- The delay-histogram field `<kind>|<bin>|<variant>` of a call, built once per bin and variant:
-- `cache` is the call's table for one kind (cohort hours of exposures, delay bins of rewards).
local function bin_field(cache, kind, bin, v)
  local fields = cache[bin]
  if not fields then
    fields = {}
    cache[bin] = fields
  end
  local field = fields[v]
  if not field then
    field = kind .. '|' .. string.format('%d', bin) .. '|' .. v
    fields[v] = field
  end
  return field
end

local cohort_fields
local function cohort(v, n, now)
  dadd(bin_field(cohort_fields, 'c', math.floor(now / HOUR), v), n)
end

local delay_fields
local function delayed(v, micro, assigned, now)
  dadd(bin_field(delay_fields, 'd', delay_bin(now - assigned), v), micro)
end

local function expected(count)
  for _ = 1, count do
    local v, micro = nxt(), nxt()
    add(fields_of(v).e, tonumber(micro))
  end
end

-- Whether `s` (the shard's first counted write) is known to be set: read once per call.
local started
local function count_exposures(v, n, now, h)
  decay(v, now, h, n, 0)
  add(fields_of(v).n, n)
  cohort(v, n, now)
  if not started then
    if not get('s') then put('s', int(now)) end
    started = true
  end
end

-- A reward's counters. Runs once per applied reward, so what `add`, `dadd`, `delayed` and the
-- first test of `decay` do is written out here: each Lua call costs Redis's interpreter about
-- as much as a few table writes (results/redis5-2026-12-01-s10.md).
local function credit(v, micro, assigned, now, h)
  local f = arm_fields[v] or fields_of(v)
  -- `decay` has nothing to do for a second change at the same time without a half-life.
  if h ~= '' or not f.plain or f.t ~= now then
    local dr = micro / MICRO
    if h ~= '' then dr = dr * weight(now - assigned, tonumber(h)) end
    decay(v, now, h, 0, dr)
  end
  local field = f.r
  local d = delta[field]
  if d == nil and value[field] == nil then order[#order + 1] = field end
  delta[field] = (d or 0) + micro
  local delay = now - assigned
  local bin = 0
  if delay >= FINE[1] or delay < 0 then bin = delay_bin(delay) end
  local fields = delay_fields[bin]
  field = fields and fields[v] or bin_field(delay_fields, 'd', bin, v)
  d = ddelta[field]
  if d == nil then
    dorder[#dorder + 1] = field
    d = 0
  end
  ddelta[field] = d + micro
  if not started then
    if not get('s') then put('s', int(now)) end
    started = true
  end
end

-- The call's share sets (op W), by name and in order: `expose_sets` (apply_ops.lua).
local share_sets, set_order

-- A call's state of this file, made afresh for each call: its keys, arguments and buffers.
local function begin_apply(keys, argv)
  redis, string, math, struct, tonumber, ipairs, unpack = libraries()
  KEYS, ARGV = keys, argv
  sticky, arms, marks, due, delays = keys[1], keys[2], keys[3], keys[4], keys[7]
  records, pending = keys[5], keys[6]
  shard_arms = arms
  skew, slack = tonumber(argv[1]), tonumber(argv[2])
  -- The replies' array made with room for 32 (a constructor of nils sizes Lua 5.1's array
  -- part and leaves it empty): filled from empty it was reallocated at every power of two.
  out = { nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
    nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil }
  at = 3
  zsets, zorder = {}, {}
  last_int, last_text = nil, nil
  loaded, delta, value, order = {}, {}, {}, {}
  rsets, rorder = {}, {}
  held_units, put_units, fresh_units, moved_units = {}, {}, {}, {}
  watermarks, amounts = {}, {}
  arm_fields, applied_outcomes = {}, {}
  dorder, ddelta = {}, {}
  cohort_fields, delay_fields = {}, {}
  started = false
  share_sets, set_order = {}, {}
end

-- How rewards are judged, and `write_all`, are in apply_rewards.lua, which follows this file
-- (then apply_ops.lua) in the one library (src/store/redis/scripts.rs).
