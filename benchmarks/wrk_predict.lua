-- wrk script: POST JSON bodies to the URL's path, taken in turn from a file (one body per line).
-- Counts the answers by status class and prints a JSON summary line (WRK_JSON {...}) at the end.
-- Usage: wrk -t T -c C -d SECONDS --latency -s wrk_predict.lua URL -- BODIES_FILE
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  index = math.random(#bodies)
  answered, s2xx, s4xx, s5xx, other = 0, 0, 0, 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  index = index % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[index])
end

function response(status, headers, body)
  answered = answered + 1
  if status >= 200 and status < 300 then
    s2xx = s2xx + 1
  elseif status >= 500 then
    s5xx = s5xx + 1
  elseif status >= 400 then
    s4xx = s4xx + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total = { answered = 0, s2xx = 0, s4xx = 0, s5xx = 0, other = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(total) do
      total[name] = total[name] + thread:get(name)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "answered": %d, "status_2xx": %d, "status_4xx": %d, '
      .. '"status_5xx": %d, "status_other": %d, "socket_errors": {"connect": %d, "read": %d, "write": %d, '
      .. '"timeout": %d}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, total.answered, total.s2xx, total.s4xx, total.s5xx, total.other,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
