-- wrk script: each request is one scanner save of BENCH_GROUPS tubes of 10 people, all unique.
local token = os.getenv("BENCH_TOKEN")
local site = os.getenv("BENCH_SITE")
local round = os.getenv("BENCH_ROUND")
local groups = tonumber(os.getenv("BENCH_GROUPS"))
local offset = tonumber(os.getenv("BENCH_OFFSET"))
local people = tonumber(os.getenv("BENCH_PEOPLE"))
local start = os.getenv("BENCH_START")
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local n = counter * 2 + tid  -- two wrk threads interleave, never collide
  local parts = {}
  for g = 0, groups - 1 do
    local tube = n * groups + g
    local ids = {}
    for j = 0, 9 do
      local p = (offset + tube * 10 + j) % people
      ids[#ids + 1] = string.format('"%024x"', p)
    end
    parts[#parts + 1] = string.format('{"tube":"LV%010d%02d","people":[%s],"scanned_at":"%s"}',
      (math.floor(offset / 10) + tube) % 10000000000, groups, table.concat(ids, ","), start)
  end
  local body = string.format('{"key":"live-%d-%d-%d","round":"%s","site":"%s","groups":[%s]}',
    offset, tid, counter, round, site, table.concat(parts, ","))
  return wrk.format("POST", "/api/v1/scans/batches",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end

local shown = 0
function response(status, headers, body)
  if status ~= 200 and shown < 1 and os.getenv("BENCH_DEBUG") then
    shown = shown + 1
    io.stderr:write(status .. " " .. body .. "\n")
  end
end
