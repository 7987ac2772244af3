-- sliding-window-counter: two fixed windows, the previous one weighted by how much of it still
-- overlaps the sliding window: used = p * (window - elapsed) / window + c, where c counts the
-- current window (index floor(now / window)), p the one before and elapsed is the time since
-- the current window began. O(1) memory: HASH KEYS[1] {w = current index, c, p}, expiring when
-- the current window's count has faded out (the end of the next window).
-- Loaded on first use within a call (see ratelimit_common.lua).
local function load_sliding_window_counter()
  local sliding_window_counter = { nkeys = 1 }

  -- reset: c fades out during the next window, p by the end of this one.
  -- next: the used amount falls at p / W per us in this window, at c / W per us in the next.
  -- `cur` is the current window's count, p the previous one's, `ends` the time left in this
  -- window and `weight` = ends / W.
  local function swc_times(it, W, p, weight, ends, cur)
    local total = p * weight + cur
    local reset = 0
    if cur > 0 then
      reset = ends + W
    elseif p > 0 then
      reset = ends
    end
    local avail = it.limit - total
    if total <= 0 then
      return reset, 0
    end
    local need = math.floor(avail + 1e-9) + 1 - avail
    if need <= 0 then
      need = 1
    end
    if p > 0 and need * W / p <= ends then
      return reset, need * W / p
    end
    if cur > 0 then
      return reset, ends + (need - p * weight) * W / cur
    end
    return reset, ends
  end

  function sliding_window_counter.peek(keys, now, it)
    local W = it.window
    local idx = math.floor(now / W)
    local s = redis.call('HMGET', keys[1], 'w', 'c', 'p')
    local w, c, p = num(s[1], -2), num(s[2], 0), num(s[3], 0)
    if w == idx - 1 then
      p, c = c, 0
    elseif w ~= idx then
      p, c = 0, 0
    end
    local elapsed = now - idx * W
    local ends = W - elapsed
    local weight = ends / W
    local used = p * weight + c
    local ok = fits(used, it.cost, it.limit)
    local retry = 0
    if ok then
      retry = 0
    elseif it.cost > it.limit then
      retry = -1
    else
      local room = it.limit - it.cost - c -- what p's weighted share must fall to
      if room >= 0 and p > 0 then
        retry = W * (1 - room / p) - elapsed
      else
        -- next window: c becomes the previous count, c * (W - e) / W <= limit - cost
        retry = ends + W * (1 - (it.limit - it.cost) / c)
      end
      retry = math.max(1, retry)
    end
    -- One constructor: the table is sized once instead of growing field by field.
    return {
      idx = idx, c = c, p = p, ends = ends, weight = weight, used = used, current = w == idx,
      ok = ok, retry = retry,
    }
  end

  function sliding_window_counter.times(it, st, after)
    local cur, used = st.c, st.used
    if after then
      cur, used = cur + it.cost, used + it.cost
    end
    local reset, nxt = swc_times(it, it.window, st.p, st.weight, st.ends, cur)
    return left(it.limit, used), reset, nxt
  end

  function sliding_window_counter.commit(keys, now, it, st)
    if st.current then
      -- The stored window is this one: w and p stay as they are.
      redis.call('HSET', keys[1], 'c', int(st.c + it.cost))
    else
      redis.call('HSET', keys[1], 'w', int(st.idx), 'c', int(st.c + it.cost), 'p', int(st.p))
    end
    -- A commit earlier in this window set the same expiry (see expiry_is_set).
    if not expiry_is_set(st.current) then
      expire_us(keys[1], st.ends + it.window)
    end
    return st.idx
  end

  function sliding_window_counter.adjust(keys, now, it)
    local s = redis.call('HMGET', keys[1], 'w', 'c', 'p')
    local w = num(s[1], -2)
    local delta = it.new_cost - it.cost
    if w == it.handle then
      redis.call('HSET', keys[1], 'c', int(math.max(0, num(s[2], 0) + delta)))
    elseif w == it.handle + 1 then
      redis.call('HSET', keys[1], 'p', int(math.max(0, num(s[3], 0) + delta)))
    else
      return 0
    end
    return 1
  end

  return sliding_window_counter
end
