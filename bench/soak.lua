-- wrk script for bench/soak.sh: a mix of traffic through the gateway.
--   50% one repeated chat body (cache hits after the first),
--   25% a body unique to the request (misses: provider call + cache store),
--   15% a streamed chat request from a small set (stream misses, then cached streams),
--   10% an Anthropic Messages request from a small set.
-- Each connection counts its answers by status; done() prints the totals.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

local repeated = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Soak: the same question."}]}'

function request()
  counter = counter + 1
  local pick = counter % 20
  local body, path
  if pick < 10 then
    path, body = "/v1/chat/completions", repeated
  elseif pick < 15 then
    path = "/v1/chat/completions"
    body = string.format('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Soak miss %d-%d"}]}',
                         id, counter)
  elseif pick < 18 then
    path = "/v1/chat/completions"
    body = string.format('{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Soak stream %d"}]}',
                         counter % 50)
  else
    path = "/v1/messages"
    body = string.format('{"model":"claude-3-5-haiku-latest","max_tokens":32,"messages":[{"role":"user","content":"Soak messages %d"}]}',
                         counter % 50)
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json",
                                   ["Authorization"] = "Bearer sk-soak"}, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, n in pairs(s) do totals[code] = (totals[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(totals) do table.insert(parts, string.format("%d=%d", code, n)) end
  table.sort(parts)
  io.write(string.format("STATUSES %s\n", table.concat(parts, " ")))
  io.write(string.format("LATENCY p50=%.3fms p99=%.3fms max=%.3fms\n",
                         latency:percentile(50) / 1000, latency:percentile(99) / 1000,
                         latency.max / 1000))
end
