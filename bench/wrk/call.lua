-- One fixed request, repeated: the body, headers and URL path come from the environment that
-- bench/run.py sets. Counts answers that are not a successful tool call, per thread, and prints
-- the totals and latency percentiles (microseconds) in lines run.py parses.
wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/mcp"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = os.getenv("BENCH_ACCEPT") or "application/json, text/event-stream"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
local protocol = os.getenv("BENCH_PROTOCOL")
if protocol and protocol ~= "" then wrk.headers["MCP-Protocol-Version"] = protocol end
local method = os.getenv("BENCH_MCP_METHOD")
if method and method ~= "" then wrk.headers["Mcp-Method"] = method end
local name = os.getenv("BENCH_MCP_NAME")
if name and name ~= "" then wrk.headers["Mcp-Name"] = name end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  failures = 0
  responses = 0
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200
     or string.find(body, '"isError":true', 1, true)
     or string.find(body, '"error":{', 1, true)
     or string.find(body, '"status":"error"', 1, true) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed, answered = 0, 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
    answered = answered + thread:get("responses")
  end
  io.write(string.format("BENCH_RESULT failures=%d responses=%d\n", failed, answered))
  io.write(string.format("BENCH_LATENCY p50=%d p99=%d\n", latency:percentile(50), latency:percentile(99)))
end
