-- One wrk script for every workload of bench/http (one wrk thread, so one Lua state sends every request).
--
--   wrk ... -s workload.lua URL -- METHOD PATH BODY [TOKENS_FILE] [AUTH_HEADER]
--
-- BODY and AUTH_HEADER may contain "{}": each request replaces it with the next line of TOKENS_FILE
-- (a fresh single-use code or refresh token per request). "-" means no body / no header.
-- done() prints one line "WRKJSON {...}" for the harness: requests, duration, p50/p99 and the errors.

local method, path, body_tpl, auth_tpl
local tokens, n, i = {}, 0, 0

local function split(tpl)
  if tpl == nil or tpl == "-" then return nil end
  local s, e = string.find(tpl, "{}", 1, true)
  if s == nil then return { tpl } end
  return { string.sub(tpl, 1, s - 1), string.sub(tpl, e + 1) }
end

local function fill(parts, token)
  if parts == nil then return nil end
  if parts[2] == nil then return parts[1] end
  return parts[1] .. token .. parts[2]
end

function init(args)
  method, path = args[1], args[2]
  body_tpl = split(args[3])
  if args[4] ~= nil and args[4] ~= "-" then
    for line in io.lines(args[4]) do
      if #line > 0 then n = n + 1; tokens[n] = line end
    end
  end
  auth_tpl = split(args[5])
end

function request()
  local token = ""
  if n > 0 then
    i = i + 1
    token = tokens[((i - 1) % n) + 1]   -- past the end the file wraps: the harness flags the run
  end
  local headers = {}
  local body = fill(body_tpl, token)
  if body ~= nil then headers["Content-Type"] = "application/x-www-form-urlencoded" end
  local auth = fill(auth_tpl, token)
  if auth ~= nil then headers["Authorization"] = auth end
  return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
