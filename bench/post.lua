-- wrk script: POSTs one chat completion body (BODY env var or the default) to wrk's URL.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY") or
  '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Benchmark me, please."}]}'
