-- Entry point of the rate-limit script: decides or settles several limiter states at once.
-- All KEYS of one call share a hash tag (one slot), so it runs on Redis Cluster.
--
-- ARGV[1]  'check' or 'settle'
-- ARGV[2]  fixed time in us for tests; '' (production) reads redis.call('TIME'), so every
--          gateway instance sees the same clock
-- ARGV[3]  n, the number of items; then 7 fields per item:
--          algorithm (fw | swl | swc | tb), limit, window (ms), burst, cost, handle, new_cost
-- then, for 'check' only and optional: m, the number of settle items carried along, and 7
--          fields per settle item as above
-- KEYS     each item's keys in item order (swl: 2, others: 1), then the settle items' keys
--
-- check: every item is decided first; only when all admit are they all consumed, so a
-- refused request consumes nothing here. Reply: {all_admitted, then per item: admitted,
-- remaining, reset_ms, next_ms, retry_ms (-1: never fits), handle}. Remaining, reset and next
-- describe the state after this call (consumed or not).
-- settle: per item, turns the reservation `handle` of `cost` into `new_cost` (0 = refund),
-- never below zero. Reply: the number of items still found and adjusted.
-- A check carrying settle items applies them first (as a settle would), so one call settles
-- an earlier request and decides the next; its reply is the check's.
local loaders = {
  fw = load_fixed_window,
  swl = load_sliding_window_log,
  swc = load_sliding_window_counter,
  tb = load_token_bucket,
}
local algorithms = {} -- the ones this call uses, loaded once

local now
if redis_clock then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end

local function ms(us)
  if us <= 0 then
    return 0
  end
  return math.ceil(us / 1000)
end

-- Reads `count` items whose fields start after ARGV[base] and whose keys start at KEYS[k];
-- returns them and the index of the next unread key.
local function read_items(base, count, k)
  local items = {}
  for i = 1, count do
    local a = base + (i - 1) * 7
    local code = ARGV[a + 1]
    local alg = algorithms[code]
    if not alg then
      local load = loaders[code]
      if not load then
        return nil, code
      end
      alg = load()
      algorithms[code] = alg
    end
    local it = {
      alg = alg,
      limit = tonumber(ARGV[a + 2]),
      window = tonumber(ARGV[a + 3]) * 1000,
      burst = tonumber(ARGV[a + 4]),
      cost = tonumber(ARGV[a + 5]),
      handle = tonumber(ARGV[a + 6]),
      new_cost = tonumber(ARGV[a + 7]),
      keys = {},
    }
    for j = 1, alg.nkeys do
      it.keys[j] = KEYS[k]
      k = k + 1
    end
    items[i] = it
  end
  return items, k
end

local function settle(items)
  local done = 0
  for _, it in ipairs(items) do
    done = done + it.alg.adjust(it.keys, now, it)
  end
  return done
end

local n = tonumber(ARGV[3])
local items, k = read_items(3, n, 1)
if not items then
  return redis.error_reply('ERR ratelimit: unknown algorithm ' .. tostring(k))
end

if ARGV[1] == 'settle' then
  return settle(items)
end

local m_at = 4 + n * 7
local m = tonumber(ARGV[m_at])
if m and m > 0 then
  local carried, bad = read_items(m_at, m, k)
  if not carried then
    return redis.error_reply('ERR ratelimit: unknown algorithm ' .. tostring(bad))
  end
  settle(carried)
end

local states, all = {}, true
for i, it in ipairs(items) do
  states[i] = it.alg.peek(it.keys, now, it)
  if not states[i].ok then
    all = false
  end
end
local out = { all and 1 or 0 }
for i, it in ipairs(items) do
  local st = states[i]
  local handle = 0
  if all then
    handle = it.alg.commit(it.keys, now, it, st)
  end
  local remaining, reset, nxt = it.alg.times(it, st, all)
  local retry = st.retry
  if retry > 0 then
    retry = ms(retry)
  end
  local o = 1 + (i - 1) * 6
  out[o + 1] = st.ok and 1 or 0
  out[o + 2] = remaining
  out[o + 3] = ms(reset)
  out[o + 4] = ms(nxt)
  out[o + 5] = retry
  out[o + 6] = handle
end
return out
