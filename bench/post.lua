-- wrk script: POSTs one chat completion body (BODY env var or the default) to wrk's URL.
-- Every request is identical, so after the first one a cache answers all of them.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY") or
  '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Benchmark me, please."}]}'
dofile("bench/wrk_report.lua")
