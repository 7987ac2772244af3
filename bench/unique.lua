-- wrk script: POSTs a chat completion whose body differs in every request (a counter plus
-- NONCE, set per run by bench/run.sh), so a response cache never hits: each request is a
-- lookup miss, a provider call and a store. Building the request in Lua costs wrk a little
-- time per request; the nginx and mock baselines use the fixed body of post.lua.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local nonce = os.getenv("NONCE") or tostring(os.time())
local n = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format(
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Benchmark me, please. %s-%d"}]}',
    nonce, n))
end
dofile("bench/wrk_report.lua")
