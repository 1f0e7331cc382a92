-- Appended to load.lua by run.sh for the constant-rate measurement (wrk2 is not packaged
-- for Debian). Each connection waits an exponentially distributed think time of mean
-- `pace_ms` before each request, so c connections offer about c / (pace_ms + latency)
-- requests/s as a Poisson-like stream. wrk takes whole milliseconds, so the think time is
-- rounded stochastically (floor(x + U)), which keeps its mean exact.
--
-- Caveat, stated in the report: this is still a closed loop per connection. A stalled
-- response delays that connection's next request instead of queueing it, so, unlike wrk2,
-- latencies are not corrected for coordinated omission; with 100+ mostly idle connections
-- the effect is limited to stalls longer than the think time.
function delay()
   local think = -math.log(1 - math.random()) * tonumber(opt.pace_ms or "1")
   return math.floor(think + math.random())
end
