-- Helpers shared by the rate-limit algorithms. The script Redis runs is this file, then
-- fixed_window.lua, sliding_window_log.lua, sliding_window_counter.lua, token_bucket.lua and
-- ratelimit_main.lua, concatenated in that order into one chunk (src/ratelimit/script.cpp).
--
-- Each algorithm file defines a loader, load_<algorithm>(), returning a table with
--   nkeys                     how many KEYS one limiter state uses
--   peek(keys, now, it)       decides whether it.cost fits; writes nothing that changes the
--                             decision of a later call (only expired-entry clean-up)
--   times(it, st, after)      remaining, reset and next for the state peek saw (`after`:
--                             once it.cost is consumed)
--   commit(keys, now, it, st) consumes it.cost, returns the reservation handle
--   adjust(keys, now, it)     turns the reservation it.handle of it.cost into it.new_cost,
--                             never below zero; returns 1 if applied, 0 if it had expired
-- Times are integer microseconds; `it` holds limit, window (us), burst, cost, handle, new_cost.
-- peek returns a table `st` with ok and retry (us until it.cost fits, -1 if it never can) and
-- what commit and times need. times is called once per item, for the outcome the call has:
-- remaining, reset (us until the limiter is back at its full limit) and next (us until one
-- more unit becomes available).
--
-- Redis runs the whole chunk on every call and keeps nothing between calls, so the chunk
-- itself does as little as it can: an algorithm's functions are created only when a call
-- uses it (ratelimit_main.lua loads each one at most once per call).

-- True when the clock is Redis TIME (production), false for a fixed test time (ARGV[2]).
local redis_clock = ARGV[2] == ''

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

-- Whether a commit may leave the key's expiry as it is: the window algorithms expire a key at
-- a fixed point of the Redis clock per window (its end, or the next window's), so once a
-- commit of this window has set it (`current`: the stored window is this one), setting it
-- again changes it by less than the 1 ms rounding. A fixed test time is not the clock the
-- expiry runs on: then it is always set, from the fixed time.
local function expiry_is_set(current)
  return current and redis_clock
end
