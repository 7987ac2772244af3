-- fixed-window: one counter per window of `window` us aligned to the Unix epoch
-- (window index = floor(now / window)). State: HASH KEYS[1] {w = window index, c = units used
-- in it}, expiring when the window ends. Admits while c + cost <= limit. Up to twice the
-- limit can pass around a window boundary; that is the algorithm, not a bug.
-- Loaded on first use within a call (see ratelimit_common.lua).
local function load_fixed_window()
  local fixed_window = { nkeys = 1 }

  function fixed_window.peek(keys, now, it)
    local idx = math.floor(now / it.window)
    local s = redis.call('HMGET', keys[1], 'w', 'c')
    local used = 0
    local current = num(s[1], -1) == idx
    if current then
      used = num(s[2], 0)
    end
    local ends = (idx + 1) * it.window - now
    local ok = fits(used, it.cost, it.limit)
    local retry = 0
    if ok then
      retry = 0
    elseif it.cost > it.limit then
      retry = -1
    else
      retry = ends
    end
    -- One constructor: the table is sized once instead of growing field by field.
    return { idx = idx, used = used, ends = ends, current = current, ok = ok, retry = retry }
  end

  function fixed_window.times(it, st, after)
    local used = st.used
    if after then
      used = used + it.cost
    end
    local reset = used > 0 and st.ends or 0
    return left(it.limit, used), reset, reset
  end

  function fixed_window.commit(keys, now, it, st)
    redis.call('HSET', keys[1], 'w', int(st.idx), 'c', int(st.used + it.cost))
    -- A commit earlier in this window set the same expiry (see expiry_is_set).
    if not expiry_is_set(st.current) then
      expire_us(keys[1], st.ends)
    end
    return st.idx
  end

  function fixed_window.adjust(keys, now, it)
    local s = redis.call('HMGET', keys[1], 'w', 'c')
    if num(s[1], -1) ~= it.handle then
      return 0
    end
    local c = math.max(0, num(s[2], 0) + it.new_cost - it.cost)
    redis.call('HSET', keys[1], 'c', int(c))
    return 1
  end

  return fixed_window
end
