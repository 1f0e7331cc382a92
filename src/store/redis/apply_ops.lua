-- banditd: the op loop of apply.lua (the last of the library's three files,
-- src/store/redis/scripts.rs): `run` reads the ops of ARGV in order and runs each against the
-- buffers apply.lua defines, then writes the buffers once (`write_all`) and returns one reply
-- string per I/R/U/T/K/C op and one for op B. The function Redis calls (or the script's last
-- line) is `run`.
local skip_exposures
-- A sticky op (I: insert a new unit's record; R: reassign a unit held by `from`): the unit,
-- the variant it had (R), the record to write (`v \t assigned \t propensity \t`, spelled by
-- banditd from the variant of `set`, its assignment time and propensity), and the share set
-- (op W) of its variant, time and half-life. Its reply: `1<record>` written, `0<record>` held
-- already, `-` no record (R). `rget`, `rset` and `expose` are written out here: a Lua call
-- costs Redis's interpreter as much as a few table writes, and this runs once per new unit.
local function sticky_op(op, unit, from, value, set)
  local r = rsets[records] or rbuf()
  local held = r.held
  local record = held[unit]
  if record == nil then record = rget(unit) end
  local write = false
  if op == 'I' then
    if record then out[#out + 1] = '0' .. record else write = true end
  elseif not record then
    out[#out + 1] = '-'
  else
    local held, _, _, reward = parse(record)
    if held ~= from then
      out[#out + 1] = '0' .. record
    else
      add('mn|' .. held, 1)
      if reward ~= '' then add('mr|' .. held, tonumber(reward)) end
      write = true
    end
  end
  if write then
    if not record or r.moved[unit] then r.fresh[unit] = true end
    if r.put[unit] == nil then r.order[#r.order + 1] = unit end
    r.put[unit] = value
    held[unit] = value
    set.written = set.written + 1
    if set.h ~= '' then count_exposures(set.v, 1, set.now, set.h) end
    out[#out + 1] = '1' .. value
  end
end

-- A new or reassigned sticky unit's exposure is counted through its share set (op W: one per
-- call, variant, time and half-life): its expected exposures are the set's shares times the
-- units written, added once per call (integers, so exactly what one add per unit gave), and
-- without a half-life its exposures likewise (raw counts and the '-' marker add and commute);
-- with one, each exposure decays the arm's counts at once, in op order, as before.
-- (`sticky_op` in apply_ops.lua counts a unit written into its set.)
local function expose_sets()
  for _, name in ipairs(set_order) do
    local set = share_sets[name]
    local n = set.written
    if n > 0 then
      if set.h == '' then count_exposures(set.v, n, set.now, set.h) end
      for _, share in ipairs(set.shares) do add(share[1], share[2] * n) end
    end
  end
end

local function run(keys, argv)
  begin_apply(keys, argv)
  begin_rewards()
  skip_exposures = false
  while at <= #ARGV do
    local op = nxt()
    if op == 'N' then
      -- The call's sticky ops, packed in one string (call.rs, `Call::sticky`: Redis makes an
      -- object and a Lua string of every argument, which were nine per new unit): each its kind
      -- (I or R), its records' shard (first KEYS index, as op S), then the unit, the variant it
      -- had, the record to write and its share set's name as `I4c0` texts.
      local blob = nxt()
      local pos, current = 1, 0
      local kind, first, unit, from, value, set
      while pos <= #blob do
        kind, first, unit, from, value, set, pos =
          struct.unpack('<c1I4I4c0I4c0I4c0I4c0', blob, pos)
        if first ~= current then
          use_shard(first)
          current = first
        end
        sticky_op(kind, unit, from, value, share_sets[set])
      end
    elseif op == 'W' then
      -- A share set the sticky ops that follow name: its name, the variant, the time and the
      -- half-life of their exposures, a count, then that many (variant, micro-units) shares.
      local name, v, now, h, count = nxt(), nxt(), tonumber(nxt()), nxt(), tonumber(nxt())
      local shares = {}
      for i = 1, count do
        local field, micro = fields_of(nxt()).e, tonumber(nxt())
        shares[i] = { field, micro }
      end
      share_sets[name] = { v = v, now = now, h = h, shares = shares, written = 0 }
      set_order[#set_order + 1] = name
    elseif op == 'O' then
      -- Outcomes to read up front: KEYS index, count, then that many fields.
      local key, count = KEYS[tonumber(nxt())], tonumber(nxt())
      local fields = { unpack(ARGV, at, at + count - 1) }
      at = at + count
      local known = fetched[key] or {}
      fetched[key] = known
      local values = redis.call('HMGET', key, unpack(fields))
      for i, field in ipairs(fields) do known[field] = values[i] or false end
    elseif op == 'Q' then
      -- An event-id shard op B uses: its directory's KEYS index, how long Redis keeps it at
      -- least (ms), its ids' 8-byte digests and the ids (`I4c0` texts), each concatenated in
      -- op B's order (`declare_home`, apply_rewards.lua).
      declare_home(tonumber(nxt()), tonumber(nxt()), nxt(), nxt())
    elseif op == 'L' then
      -- A digest list op B may append to: its KEYS index, its shard's directory's, its end, how
      -- long Redis keeps it at least (ms).
      local list, dir, ends, keep = tonumber(nxt()), tonumber(nxt()), nxt(), tonumber(nxt())
      id_lists[list] = { ids = {}, dir = dir, ends = ends, keep = keep }
      list_order[#list_order + 1] = list
    elseif op == 'G' then
      -- The predicted credits of op B's kind V rewards, by group, and their side string
      -- (`declare_groups`, apply_rewards.lua); sent before op B, credited after it.
      declare_groups(nxt(), nxt())
    elseif op == 'B' then
      -- Rewards judged with their event ids, packed in one string (`judge_packed`,
      -- apply_rewards.lua); its reply is one string, one byte per reward.
      out[#out + 1] = judge_packed(nxt())
    elseif op == 'P' then
      -- The records the sticky ops and unit rewards of the call name, read up front: a shard's
      -- first KEYS index, a count, then that many units (at most 512) packed as `I4c0` texts in
      -- one string (sent before every other op, so the call's first shard is current again
      -- after).
      local first, count, names = tonumber(nxt()), tonumber(nxt()), nxt()
      use_shard(first)
      local units = { struct.unpack(format_of('I4c0', count), names) }
      units[count + 1] = nil -- the position after them
      prefetch(units)
      -- Kept in order for op B, which names a unit by its place among its shard's (the
      -- shard's later P ops, 512 units each, follow on).
      local listed = shard_units[first]
      if not listed then
        shard_units[first] = units
      else
        local base = #listed
        for i = 1, count do listed[base + i] = units[i] end
      end
      use_shard(1)
    elseif op == 'S' then
      -- The ops that follow are another shard's: the index of its first of five keys.
      use_shard(tonumber(nxt()))
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
        add('p|' .. v, n)
        expected(shares)
      end
    elseif op == 'U' then
      local claim, field, unit = KEYS[tonumber(nxt())], nxt(), nxt()
      local micro, occurred = nxt(), nxt()
      local now, window, h, keep = tonumber(nxt()), tonumber(nxt()), nxt(), nxt()
      out[#out + 1] = claimed(claim, field, keep, function()
        return judge_unit(unit, micro, occurred, now, window, h)
      end)
    elseif op == 'T' or op == 'K' then
      -- K: a token of an on_render experiment, credited only once confirmed (its mark in the
      -- shard's confirmation marks, named after the outcome field).
      local claim, field = KEYS[tonumber(nxt())], nxt()
      local confirms = nil
      if op == 'K' then confirms = KEYS[tonumber(nxt())] end
      local id, v = nxt(), nxt()
      local issued, propensity = tonumber(nxt()), nxt()
      local micro, occurred, now, window = nxt(), nxt(), tonumber(nxt()), tonumber(nxt())
      local h, keep = nxt(), nxt()
      out[#out + 1] = claimed(claim, field, keep, function()
        return judge_token(id, v, issued, propensity, micro, occurred, now, window, h, confirms)
      end)
    elseif op == 'C' then
      -- A per-request token confirmed (store::rules::judge_confirmation): at most once per
      -- assignment id; `late` (past confirm_within) and the mark's deadline come computed.
      local confirms, cdue = KEYS[tonumber(nxt())], KEYS[tonumber(nxt())]
      local id, v, issued, propensity = nxt(), nxt(), nxt(), nxt()
      local now, late, keep = nxt(), nxt(), nxt()
      local t, h, shares = tonumber(nxt()), nxt(), tonumber(nxt())
      if find(confirms, id) then
        out[#out + 1] = 'D'
        at = at + 2 * shares
      elseif late == '1' or tonumber(keep) <= watermark() then
        out[#out + 1] = 'O'
        at = at + 2 * shares
      else
        zput(confirms, id, nil,
          id .. SEP .. v .. '\t' .. issued .. '\t' .. propensity .. '\t' .. keep .. '\t' .. now,
          '0')
        zput(cdue, nil, nil, id, keep)
        count_exposures(v, 1, t, h)
        add('p|' .. v, 1)
        expected(shares)
        out[#out + 1] = 'C'
      end
    else
      write_all()
      return redis.error_reply('banditd: unknown op ' .. tostring(op))
    end
  end
  expose_sets()
  credit_groups() -- op G's groups, less the V rewards op B judged otherwise
  if #order > 0 or #dorder > 0 then add('v', 1) end -- the change counter (src/store/redis/fresh.rs)
  write_all()
  return out
end
