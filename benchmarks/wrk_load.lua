-- wrk script for benchmarks/load.py: POSTs the JSON bodies of a file (one per line) in turn,
-- stops each thread after its share of the request budget, and prints one JSON summary line.
--   wrk -t1 -c32 -d8s -s benchmarks/wrk_load.lua URL -- BODIES_FILE MAX_REQUESTS_PER_THREAD
local bodies = {}
local next_body = 0
local budget = 0
local answered = 0

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  budget = tonumber(args[2])
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= budget then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "errors": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
