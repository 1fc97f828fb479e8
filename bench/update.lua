-- wrk script for bench/run.sh: dynDNS updates with per-request names, addresses
-- and Basic credentials. Arguments (after `--`): MODE CREDS_FILE THREADS
--   prime      every name, in order (threads split the list), its fixed address
--   unchanged  a random name of the first half, its fixed address (no write: S1)
--   changing   a random name of the second half, a fresh random IPv4 (a write: S2)
--   close      like unchanged, with `Connection: close` (a new connection each: S3)
-- CREDS_FILE: one `NAME<TAB>Authorization-value` a line (bench.py creds).
-- The fixed address of name i is 10.x.y.z with x.y.z = i: S1 stores nothing new.
-- done() prints one `RESULT key=value ...` line for run.sh to parse.

local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

local function fixed_addr(i)
  return string.format("10.%d.%d.%d", math.floor(i / 65536) % 256,
    math.floor(i / 256) % 256, i % 256)
end

function init(args)
  mode = args[1] or "unchanged"
  names, auths = {}, {}
  for line in io.lines(args[2]) do
    local n, a = line:match("^([^\t]+)\t(.+)$")
    if n then
      names[#names + 1] = n
      auths[#auths + 1] = a
    end
  end
  count = #names
  half = math.floor(count / 2)
  bad, sent = 0, 0
  -- wrk gives each thread its own Lua state; seed them apart.
  math.randomseed(os.time() * 1000 + tid * 7919)
  -- prime: this thread's slice of [1, count]
  local per = math.ceil(count / tonumber(args[3] or 1))
  first = tid * per + 1
  last = math.min(count, first + per - 1)
  next_i = first
end

function request()
  local i, ip
  if mode == "prime" then
    -- Cycle through this thread's slice until run.sh sees every name stored and
    -- stops wrk: a request lost to a socket error is sent again in the next round
    -- (and the rounds after the first are unchanged updates, no writes).
    i = first + (next_i - first) % (last - first + 1)
    next_i = next_i + 1
    ip = fixed_addr(i - 1)
  elseif mode == "changing" then
    i = half + math.random(count - half)
    ip = string.format("11.%d.%d.%d", math.random(0, 255), math.random(0, 255),
      math.random(1, 254))
  else
    i = math.random(half)
    ip = fixed_addr(i - 1)
  end
  sent = sent + 1
  local headers = { ["Authorization"] = auths[i] }
  if mode == "close" then
    headers["Connection"] = "close"
  end
  return wrk.format("GET", "/nic/update?hostname=" .. names[i] .. "&myipv4=" .. ip,
    headers)
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local non200 = 0
  for _, t in ipairs(threads) do
    non200 = non200 + (t:get("bad") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f non200=%d sock_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    non200, e.connect + e.read + e.write + e.timeout))
end
