-- wrk script: like post.lua, for another fixed body whose answer is about 3 KB (the mock's
-- x-mock-words header, which nginx and Redline both pass on): cache hits of a realistic
-- answer size, above cache.compress_min_bytes.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-mock-words"] = "400"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Benchmark me at length."}]}'
dofile("bench/wrk_report.lua")
