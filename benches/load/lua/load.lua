-- wrk script for every scenario of benches/load/run.sh, chosen by `scenario=` after `--`.
-- Arguments are key=value words:
--   scenario   warmup | assign_known | assign_new | per_request | events | mixed
--   run        a word unique to this wrk run (keeps new units and event ids unique)
--   threads    wrk's -t (each thread takes every threads-th index of a shared range)
--   known      how many known units exist: known_prefix .. 0 .. known-1
--   known_prefix  default "k-"
--   ev_base    first event unit index this run may use (units "ev-<i>", pre-filled)
--   batch      events per POST (events scenario), format = json | ndjson
--   mix_events share of requests that are single-event POSTs (mixed), e.g. 0.1
--
-- Every response is counted: anything outside 2xx is an error (wrk itself only counts
-- status >= 400). Event answers are parsed for "applied"/"rejected", so a run that ran out of
-- fresh units, or whose events were refused, shows it. done() prints one RESULT line.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

non2xx = 0
applied = 0
rejected = 0
-- Next unused index of the shared unit range (warm-up and event units), per thread.
next_index = 0

local opt = {}
local handler
local count_events = false
local n_threads, known, known_prefix, ev_base, run, batch, content_type, mix_events
local experiment = "load-sticky"
local k = 0 -- this thread's request counter

local function arg(name, default)
   local v = opt[name]
   if v == nil then return default end
   return v
end

-- Index of the j-th unit of this thread's k-th block of `size` units.
local function block_index(base, block, size, j)
   return base + (block * n_threads + (tid - 1)) * size + j
end

local function get_assign(exp, unit)
   return wrk.format("GET", "/v1/experiments/" .. exp .. "/assign?unit=" .. unit)
end

local function known_unit()
   return known_prefix .. math.random(0, known - 1)
end

local function assign_known()
   return get_assign(experiment, known_unit())
end

local function assign_new()
   k = k + 1
   return get_assign(experiment, "n-" .. run .. "-" .. tid .. "-" .. k)
end

local function per_request()
   return get_assign("load-per-request", "p-" .. math.random(0, 999999))
end

-- Walks this thread's share of the known units once, then repeats random known ones (cheap
-- hits) until wrk's duration ends; run.sh repeats the warm-up until every unit was reached.
local function warmup()
   local i = block_index(0, k, 1, 0)
   if i >= known then return assign_known() end
   k = k + 1
   next_index = block_index(0, k, 1, 0)
   return get_assign(experiment, known_prefix .. i)
end

local function event_line(i, seq, j)
   return '{"id":"e' .. run .. "-" .. tid .. "-" .. seq .. "-" .. j ..
      '","experiment":"load-sticky","unit":"ev-' .. i .. '"}'
end

-- One POST of `batch` events, each for a pre-assigned, never rewarded unit.
local function events()
   local lines = {}
   for j = 0, batch - 1 do
      lines[j + 1] = event_line(block_index(ev_base, k, batch, j), k, j)
   end
   k = k + 1
   next_index = block_index(ev_base, k, batch, 0)
   local body
   if content_type == "application/x-ndjson" then
      body = table.concat(lines, "\n") .. "\n"
   else
      body = "[" .. table.concat(lines, ",") .. "]"
   end
   return wrk.format("POST", "/v1/events", { ["Content-Type"] = content_type }, body)
end

local function mixed()
   if math.random() < mix_events then
      return events()
   end
   return assign_known()
end

local scenarios = {
   warmup = warmup,
   assign_known = assign_known,
   assign_new = assign_new,
   per_request = per_request,
   events = events,
   mixed = mixed,
}

function init(args)
   for _, word in ipairs(args) do
      local key, value = word:match("^([%w_]+)=(.*)$")
      if key then opt[key] = value end
   end
   handler = scenarios[arg("scenario", "")]
   if handler == nil then
      error("unknown scenario '" .. arg("scenario", "") .. "'")
   end
   n_threads = tonumber(arg("threads", "1"))
   known = tonumber(arg("known", "1"))
   known_prefix = arg("known_prefix", "k-")
   ev_base = tonumber(arg("ev_base", "0"))
   run = arg("run", "r")
   batch = tonumber(arg("batch", "1"))
   mix_events = tonumber(arg("mix_events", "0"))
   content_type = arg("format", "json") == "ndjson" and "application/x-ndjson" or "application/json"
   count_events = arg("scenario", "") == "events" or arg("scenario", "") == "mixed"
   next_index = ev_base
   math.randomseed(tonumber(arg("seed", "1")) * 7919 + tid)
end

function request()
   return handler()
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   elseif count_events then
      local a = body:match('"applied":(%d+)')
      if a then
         applied = applied + tonumber(a)
         rejected = rejected + tonumber(body:match('"rejected":(%d+)') or "0")
      end
   end
end

function done(summary, latency, requests)
   local bad, ok_events, refused = 0, 0, 0
   local lowest_next, highest_next
   for _, t in ipairs(threads) do
      bad = bad + t:get("non2xx")
      ok_events = ok_events + t:get("applied")
      refused = refused + t:get("rejected")
      local n = t:get("next_index")
      if lowest_next == nil or n < lowest_next then lowest_next = n end
      if highest_next == nil or n > highest_next then highest_next = n end
   end
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d non2xx=%d socket_errors=%d timeouts=%d " ..
      "p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f mean_us=%.0f " ..
      "applied=%d rejected=%d lowest_next=%d highest_next=%d\n",
      summary.requests, summary.duration, bad, e.connect + e.read + e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean,
      ok_events, refused, lowest_next or 0, highest_next or 0))
end
