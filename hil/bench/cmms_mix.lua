-- wrk script for the hub's maintenance API under load (scripts/bench-cmms.sh
-- runs it against a hub seeded with `dcmms-hub seed`).
--
-- Every request carries the bearer token of DCMMS_BENCH_TOKEN. The request
-- kind comes from DCMMS_BENCH_KIND:
--   list        GET /api/v1/work-orders?limit=50 (first page, default order)
--   filter      GET /api/v1/work-orders filtered by site, state, assignee,
--               type, priority or a due-date window, alone or combined, in
--               every sort order (limit 50)
--   get         GET /api/v1/work-orders/WO-nnnnnn, ids drawn from the seeded
--               range 1..DCMMS_BENCH_WORK_ORDERS
--   transition  POST /api/v1/work-orders/{id}/transitions: hold an
--               in-progress work order, resume an on-hold one, with the
--               expected version
--   mix         all of them, weighted by DCMMS_BENCH_MIX
--               (default "list=20,filter=30,get=40,transition=10")
--
-- Transitions draw from DCMMS_BENCH_IDS, a file of "<id> <state> <version>"
-- lines (in_progress or on_hold) read from the API just before the run.
-- Each of the DCMMS_BENCH_THREADS wrk threads (wrk's -t; wrk calls each
-- thread's init() before the next thread exists, so the script cannot count
-- them) owns every Nth line and walks them in turn, flipping its
-- own record of the state and version at each request, so two requests for
-- one work order are never in flight together unless a thread cycles
-- through its whole share during one request. A 409 (version conflict or
-- a state the record did not expect) is a refusal the API is meant to
-- give under concurrency; it is counted apart from errors.
--
-- DCMMS_BENCH_THINK_MS > 0 makes every connection a user who waits a
-- random think time (exponential, that mean) before each request, so the
-- offered load is about connections / think time instead of as much as
-- the hub can take; wrk starts a request's clock after the wait.
--
-- done() prints the figures and, when DCMMS_BENCH_OUT names a file,
-- appends one line of key=value pairs to it for the table of the run.

local env = function(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local KINDS = { "list", "filter", "get", "transition" }
local SITES = tonumber(env("DCMMS_BENCH_SITES", "10"))
local WORK_ORDERS = tonumber(env("DCMMS_BENCH_WORK_ORDERS", "100000"))
local TECHNICIANS = 40 -- tech-00 .. tech-39, as the seed assigns them
local STATES = { "requested", "open", "scheduled", "assigned", "in_progress",
  "on_hold", "completed", "verified", "closed", "cancelled" }
local TYPES = { "corrective", "preventive", "predictive", "inspection" }
local PRIORITIES = { "p1", "p2", "p3", "p4" }
local SORTS = { "created_at", "due", "priority", "updated_at" }

-- ---- main thread: one entry per wrk thread, read back in done() ----------
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

-- ---- worker threads ------------------------------------------------------
local headers
local weights = {}   -- { {kind, cumulative weight}, ... }
local total_weight = 0
local owned = {}     -- transition ids of this thread: { id, state, version }
local next_owned = 1
local verified = false -- wrk calls thread 0's request() once to check it
sent = {}            -- requests by kind (globals, read by done())
statuses = {}        -- responses by status code

local function pick(list) return list[math.random(#list)] end

local function parse_mix(kind)
  if kind ~= "mix" then
    weights = { { kind, 1 } }
    total_weight = 1
    return
  end
  local spec = env("DCMMS_BENCH_MIX", "list=20,filter=30,get=40,transition=10")
  for name, w in spec:gmatch("(%a+)=(%d+)") do
    local known = false
    for _, k in ipairs(KINDS) do known = known or k == name end
    if not known then error("DCMMS_BENCH_MIX: no request kind " .. name) end
    w = tonumber(w)
    if w > 0 then
      total_weight = total_weight + w
      table.insert(weights, { name, total_weight })
    end
  end
  if total_weight == 0 then error("DCMMS_BENCH_MIX gives no request a weight") end
end

local function load_ids()
  local path = env("DCMMS_BENCH_IDS", nil)
  if path == nil then return end
  local f = io.open(path, "r")
  if f == nil then error("cannot read DCMMS_BENCH_IDS " .. path) end
  local nthreads = tonumber(env("DCMMS_BENCH_THREADS", "1"))
  local n = 0
  for line in f:lines() do
    local id, state, version = line:match("^(%S+)%s+(%S+)%s+(%d+)")
    if id ~= nil then
      if n % nthreads == tid then
        table.insert(owned, { id = id, state = state, version = tonumber(version) })
      end
      n = n + 1
    end
  end
  f:close()
end

function init(args)
  local kind = env("DCMMS_BENCH_KIND", "mix")
  local valid = kind == "mix"
  for _, k in ipairs(KINDS) do valid = valid or k == kind end
  if not valid then error("DCMMS_BENCH_KIND must be mix, list, filter, get or transition") end
  headers = {
    ["Authorization"] = "Bearer " .. env("DCMMS_BENCH_TOKEN", ""),
    ["Content-Type"] = "application/json",
  }
  math.randomseed(os.time() * 1000 + tid * 7919)
  parse_mix(kind)
  for _, w in ipairs(weights) do
    if w[1] == "transition" then load_ids() end
  end
  for _, k in ipairs(KINDS) do sent[k] = 0 end
end

local function site() return string.format("seed-%03d", math.random(0, SITES - 1)) end
local function technician() return string.format("tech-%02d", math.random(0, TECHNICIANS - 1)) end

-- A due-date window of 1 to 30 days inside the seeded range (2025).
local function due_window()
  local from = os.time({ year = 2025, month = 1, day = 1, hour = 12 }) + math.random(0, 340) * 86400
  local to = from + math.random(0, 29) * 86400
  return "due_from=" .. os.date("!%Y-%m-%d", from) .. "&due_to=" .. os.date("!%Y-%m-%d", to)
end

local FILTERS = {
  function() return "site=" .. site() end,
  function() return "state=" .. pick(STATES) end,
  function() return "assignee=" .. technician() end,
  function() return "type=" .. pick(TYPES) end,
  function() return "priority=" .. pick(PRIORITIES) end,
  function() return due_window() end,
  function() return "site=" .. site() .. "&state=" .. pick(STATES) end,
  function() return "assignee=" .. technician() .. "&state=in_progress,on_hold" end,
  function() return "site=" .. site() .. "&type=" .. pick(TYPES) .. "&priority=" .. pick(PRIORITIES) end,
  function() return "site=" .. site() .. "&" .. due_window() end,
}

local function filtered_list()
  local q = pick(FILTERS)() .. "&sort=" .. pick(SORTS)
  if math.random(2) == 1 then q = q .. "&order=desc" end
  return wrk.format("GET", "/api/v1/work-orders?limit=50&" .. q, headers)
end

local function transition()
  local n = #owned
  if n == 0 then error("transitions need work orders in DCMMS_BENCH_IDS") end
  local wo = owned[next_owned]
  next_owned = next_owned % n + 1
  local body
  if wo.state == "in_progress" then
    body = string.format('{"action":"hold","reason":"bench: waiting for parts","expected_version":%d}', wo.version)
    wo.state = "on_hold"
  else
    body = string.format('{"action":"resume","expected_version":%d}', wo.version)
    wo.state = "in_progress"
  end
  wo.version = wo.version + 1
  return wrk.format("POST", "/api/v1/work-orders/" .. wo.id .. "/transitions", headers, body)
end

local BUILD = {
  list = function() return wrk.format("GET", "/api/v1/work-orders?limit=50", headers) end,
  filter = filtered_list,
  get = function()
    return wrk.format("GET", string.format("/api/v1/work-orders/WO-%06d", math.random(WORK_ORDERS)), headers)
  end,
  transition = transition,
}

function request()
  if tid == 0 and not verified then
    verified = true
    return BUILD.list()
  end
  local r = math.random(total_weight)
  for _, w in ipairs(weights) do
    if r <= w[2] then
      sent[w[1]] = sent[w[1]] + 1
      return BUILD[w[1]]()
    end
  end
end

local THINK_MS = tonumber(env("DCMMS_BENCH_THINK_MS", "0"))
if THINK_MS > 0 then
  function delay()
    return math.floor(-THINK_MS * math.log(1 - math.random()))
  end
end

function response(status, _, _)
  statuses[status] = (statuses[status] or 0) + 1
end

-- ---- main thread, after the run -----------------------------------------
function done(summary, latency, _)
  local by_status, by_kind = {}, {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses") or {}) do
      by_status[code] = (by_status[code] or 0) + n
    end
    for kind, n in pairs(t:get("sent") or {}) do
      by_kind[kind] = (by_kind[kind] or 0) + n
    end
  end
  local ok, conflicts, client, server, other = 0, 0, 0, 0, 0
  local codes = {}
  for code, n in pairs(by_status) do
    table.insert(codes, code)
    if code >= 200 and code < 300 then ok = ok + n
    elseif code == 409 then conflicts = conflicts + n
    elseif code >= 500 then server = server + n
    elseif code >= 400 then client = client + n
    else other = other + n end
  end
  table.sort(codes)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  local ms = function(p) return latency:percentile(p) / 1000 end
  local kinds = {}
  for _, k in ipairs(KINDS) do
    if (by_kind[k] or 0) > 0 then table.insert(kinds, k .. ":" .. by_kind[k]) end
  end
  local statuses_text = {}
  for _, code in ipairs(codes) do table.insert(statuses_text, code .. ":" .. by_status[code]) end

  io.write(string.format("requests %d in %.1f s: %.0f req/s\n", summary.requests, secs, summary.requests / secs))
  io.write(string.format("latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    ms(50), ms(95), ms(99), latency.max / 1000))
  io.write("sent by kind: " .. table.concat(kinds, " ") .. "\n")
  io.write("responses by status: " .. table.concat(statuses_text, " ") .. "\n")
  io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
    e.connect, e.read, e.write, e.timeout))

  local out = env("DCMMS_BENCH_OUT", nil)
  if out ~= nil then
    local f = assert(io.open(out, "a"))
    f:write(string.format(
      "kind=%s secs=%.1f requests=%d rps=%.1f p50=%.2f p95=%.2f p99=%.2f max=%.2f " ..
      "ok=%d conflicts=%d client=%d server=%d other=%d socket=%d sent=%s statuses=%s\n",
      env("DCMMS_BENCH_KIND", "mix"), secs, summary.requests, summary.requests / secs,
      ms(50), ms(95), ms(99), latency.max / 1000, ok, conflicts, client, server, other, socket,
      table.concat(kinds, ","), table.concat(statuses_text, ",")))
    f:close()
  end
end
