-- wrk script for bench/floor_vs_app.py: every request a booking of its own (player, session) pair.
--   wrk ... -s bench/booking.lua URL -- TOKENS_FILE SESSIONS_FILE FIRST_INDEX THREADS
-- Request i (counted from FIRST_INDEX over every thread) books session i mod S for player i mod P:
-- with P and S coprime, no pair repeats before P * S requests, and a player's next booking comes
-- P requests later (the per-player rate limit never binds). Answers are counted by status.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(out, line) end
  end
  return out
end

function init(args)
  tokens = lines(args[1])
  sessions = lines(args[2])
  first = tonumber(args[3])
  nthreads = tonumber(args[4])
  created, refused, failed = 0, 0, 0
  codes = {}
end

function request()
  local i = first + counter * nthreads + tid
  counter = counter + 1
  local token = tokens[(i % #tokens) + 1]
  local session = sessions[(i % #sessions) + 1]
  local body = '{"session_id": ' .. session .. ', "guest_count": 0, "payment_method": "stripe"}'
  return wrk.format("POST", "/api/bookings",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    refused = refused + 1
    codes[status] = (codes[status] or 0) + 1
    if sample == nil then sample = status .. " " .. string.sub(body or "", 1, 160) end
  end
end

function done(summary, latency, requests)
  local ok, other = 0, 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("created")
    other = other + thread:get("refused")
    for status, n in pairs(thread:get("codes")) do
      by_status[status] = (by_status[status] or 0) + n
    end
  end
  for _, thread in ipairs(threads) do
    local s = thread:get("sample")
    if s ~= nil then io.write("SAMPLE " .. s .. "\n") break end
  end
  local parts = {}
  for status, n in pairs(by_status) do table.insert(parts, string.format('"%d": %d', status, n)) end
  io.write(string.format('RESULT {"created": %d, "other": %d, "statuses": {%s}, "requests": %d, ' ..
    '"seconds": %.3f, "socket_errors": %d, "p50_ms": %.2f, "p99_ms": %.2f}\n',
    ok, other, table.concat(parts, ", "), summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
