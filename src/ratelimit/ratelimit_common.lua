-- Helpers shared by the rate-limit algorithms. The script Redis runs is this file, then
-- fixed_window.lua, sliding_window_log.lua, sliding_window_counter.lua, token_bucket.lua and
-- ratelimit_main.lua, concatenated in that order into one chunk (src/ratelimit/script.cpp).
--
-- Every algorithm is a table with
--   nkeys                     how many KEYS one limiter state uses
--   peek(keys, now, it)       decides whether it.cost fits; writes nothing that changes the
--                             decision of a later call (only expired-entry clean-up)
--   commit(keys, now, it, st) consumes it.cost, returns the reservation handle
--   adjust(keys, now, it)     turns the reservation it.handle of it.cost into it.new_cost,
--                             never below zero; returns 1 if applied, 0 if it had expired
-- Times are integer microseconds; `it` holds limit, window (us), burst, cost, handle, new_cost.
-- peek returns a table with ok, retry (us until it.cost fits, -1 if it never can) and for
-- both outcomes (b = before, a = after consuming): remaining, reset (us until the limiter is
-- back at its full limit) and next (us until one more unit becomes available).

-- Redis turns Lua numbers into strings with 14 significant digits; microsecond timestamps
-- have 16, so every number sent to Redis goes through one of these.
local function int(n)
  return string.format('%d', n)
end
local function real(n)
  return string.format('%.17g', n)
end

-- A stored number (HGET/HMGET reply: a string, or false when missing).
local function num(v, default)
  if v then
    return tonumber(v)
  end
  return default
end

-- Does `cost` fit next to `used`? A cost of 0 fits while anything is left.
local function fits(used, cost, limit)
  if cost == 0 then
    return used < limit
  end
  return used + cost <= limit
end

-- Whole units left, never negative (sliding counters are fractional; charges may overshoot).
local function left(limit, used)
  return math.max(0, math.floor(limit - used + 1e-9))
end

-- Expiry in whole milliseconds, rounded up, at least 1 ms.
local function expire_us(key, us)
  redis.call('PEXPIRE', key, int(math.max(1, math.ceil(us / 1000))))
end
