-- wrk script: the fixed body of post.lua, DEPTH requests (default 4) written at once on each
-- connection (HTTP/1.1 pipelining). wrk then spends a fraction of its per-request CPU, so on
-- this 2-core machine a second gateway thread has room on the load generator's core; used to
-- measure how throughput grows with gateway threads.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY") or
  '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Benchmark me, please."}]}'
local depth = tonumber(os.getenv("DEPTH") or "4")
local batch
function init(args)
  local one = wrk.format()
  batch = string.rep(one, depth)
end
function request()
  return batch
end
dofile("bench/wrk_report.lua")
