-- wrk script for bench/run_webhooks.py: POST one Alertmanager webhook (one firing alert) per request.
--
--   wrk -t1 -c32 -d15s --latency -s bench/webhooks.lua http://127.0.0.1:PORT/webhooks/alertmanager \
--       -- <body template file> <run tag> <bearer token>
--
-- Every request gets a new id "<tag>-<thread>-<n>" substituted for each "__ID__" in the body template
-- (the alert's fingerprint -> the alias, and an alertname suffix), so every webhook is a new alert.
-- done() prints one line "BENCH_JSON {...}" with counts and latency percentiles (microseconds).

local threads = {}
local next_thread = 0

function setup(thread)
   next_thread = next_thread + 1
   thread:set("tid", next_thread)
   table.insert(threads, thread)
end

local parts, tag = nil, nil
n, statuses = 0, {}  -- globals: done() reads them with thread:get()

local function split(s, sep)
   local out, from = {}, 1
   while true do
      local i, j = string.find(s, sep, from, true)
      if not i then table.insert(out, string.sub(s, from)) return out end
      table.insert(out, string.sub(s, from, i - 1))
      from = j + 1
   end
end

function init(args)
   local f = assert(io.open(args[1], "rb"))
   local template = f:read("*a")
   f:close()
   parts = split(template, "__ID__")
   tag = args[2] .. "-" .. tostring(tid)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["User-Agent"] = "Alertmanager/0.34.0 (alertbridge bench)"
   wrk.headers["Authorization"] = "Bearer " .. args[3]
end

function request()
   n = n + 1
   local body = table.concat(parts, tag .. "-" .. n)
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local by_status, sent = {}, 0
   for _, t in ipairs(threads) do
      sent = sent + t:get("n")
      local s = t:get("statuses")
      for code, count in pairs(s) do
         by_status[tostring(code)] = (by_status[tostring(code)] or 0) + count
      end
   end
   local codes = {}
   for code, count in pairs(by_status) do
      table.insert(codes, string.format("%q:%d", code, count))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"started":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"status":{%s},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p99.9":%d}}\n',
      summary.duration, summary.requests, summary.bytes, sent,
      e.connect, e.read, e.write, e.status, e.timeout, table.concat(codes, ","),
      latency.min, latency.mean, latency.max, latency.stdev,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
