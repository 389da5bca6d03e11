-- wrk script: as wrk_predict.lua, but each connection waits before each request (uniformly 0.5x-1.5x
-- PAUSE_MS, so the connections do not stay in step), so that C connections offer about
-- C * 1000 / PAUSE_MS requests per second instead of saturating the server.
-- Usage: wrk -t T -c C -d SECONDS --latency -s wrk_predict_paced.lua URL -- BODIES_FILE PAUSE_MS
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_predict.lua")

local load_bodies = init
function init(args)
  load_bodies(args)
  pause_ms = tonumber(args[2]) or 0
  math.randomseed(os.time())
end

function delay()
  return math.floor(pause_ms * (0.5 + math.random()))
end
