-- wrk script for the health-code lookups (bench/healthcode_lookup.py).
-- BENCH_MODE=mine: GET /api/v1/codes/mine with a random resident's token.
-- BENCH_MODE=lookup: GET /api/v1/codes/lookup?person=… with a random staff token and person.
-- BENCH_MODE=hello: GET BENCH_PATH (default /hello), the same script's overhead.
-- BENCH_DELAY_MS: pause before each request (a gentle load, for the recovery phase).
-- Counts answers by status; done() prints "status <code> <count>" lines for the driver.
local mode = os.getenv("BENCH_MODE") or "mine"
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local residents, staff, people = {}, {}, {}
local threads = {}

local function load(path, into)
  for line in io.lines(path) do
    if #line > 0 then into[#into + 1] = line end
  end
end

load(os.getenv("BENCH_RESIDENTS"), residents)
load(os.getenv("BENCH_STAFF"), staff)
load(os.getenv("BENCH_PEOPLE"), people)

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  math.randomseed(os.time() + (tid or 0) * 7919)
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function request()
  if mode == "hello" then
    return wrk.format("GET", os.getenv("BENCH_PATH") or "/hello")
  end
  if mode == "lookup" then
    local token = staff[math.random(#staff)]
    local person = people[math.random(#people)]
    return wrk.format("GET", "/api/v1/codes/lookup?person=" .. person,
      {["Authorization"] = "Bearer " .. token})
  end
  local token = residents[math.random(#residents)]
  return wrk.format("GET", "/api/v1/codes/mine", {["Authorization"] = "Bearer " .. token})
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for status, n in pairs(c) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("status %d %d\n", status, n))
  end
end
