-- sliding-window-log: the seed document's ZSET log, corrected. KEYS[1] is a ZSET with one
-- member per admitted request, scored by its time (us); KEYS[2] a HASH {seq, sum}. Members
-- are "<seq>:<cost>" with seq from HINCRBY, so two requests in the same microsecond (or with
-- the same fixed test time) never collide, as the seed's now .. math.random() did (Redis seeds
-- math.random identically for every script call). `sum` is the total cost inside the log, so
-- a token quantity is O(1) to check. A request at time t counts while now - window < t, i.e.
-- entries with score <= now - window are dropped. Both keys expire one window after the
-- newest entry, in whole milliseconds (PEXPIRE, rounded up), never 0 as the seed's
-- EXPIRE window / 1000 could be.
-- Loaded on first use within a call (see ratelimit_common.lua).
local function load_sliding_window_log()
  local sliding_window_log = { nkeys = 2 }

  local function swl_cost(member)
    return tonumber(string.match(member, ':(%d+)$')) or 1
  end

  -- Score of the oldest or newest member, or nil for an empty log.
  local function swl_edge(log, newest)
    local r
    if newest then
      r = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
    else
      r = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    end
    if #r == 0 then
      return nil
    end
    return tonumber(r[2])
  end

  -- Time (us from now) when `need` units have left the window, walking the log oldest first.
  local function swl_free_at(log, now, window, need)
    local freed, start = 0, 0
    while true do
      local r = redis.call('ZRANGE', log, start, start + 99, 'WITHSCORES')
      if #r == 0 then
        return window
      end
      for i = 1, #r, 2 do
        freed = freed + swl_cost(r[i])
        if freed >= need then
          return tonumber(r[i + 1]) + window - now
        end
      end
      start = start + 100
    end
  end

  function sliding_window_log.peek(keys, now, it)
    local log, meta = keys[1], keys[2]
    local cutoff = now - it.window
    -- The oldest entry first: while it is inside the window nothing has left it (no
    -- ZRANGEBYSCORE needed); without one the log is empty (or gone) and the sum is 0.
    local oldest = swl_edge(log, false)
    local sum = 0
    if oldest then
      sum = num(redis.call('HGET', meta, 'sum'), 0)
    end
    if oldest and oldest <= cutoff then
      local gone = redis.call('ZRANGEBYSCORE', log, '-inf', int(cutoff))
      for _, m in ipairs(gone) do
        sum = sum - swl_cost(m)
      end
      redis.call('ZREMRANGEBYSCORE', log, '-inf', int(cutoff))
      oldest = swl_edge(log, false)
      if not oldest then
        sum = 0
      end
      sum = math.max(0, sum)
      redis.call('HSET', meta, 'sum', int(sum))
    end
    local newest = oldest and swl_edge(log, true)
    local ok = fits(sum, it.cost, it.limit)
    local retry = 0
    if ok then
      retry = 0
    elseif it.cost > it.limit then
      retry = -1
    else
      retry = swl_free_at(log, now, it.window, sum + it.cost - it.limit)
    end
    -- One constructor: the table is sized once instead of growing field by field.
    return { sum = sum, oldest = oldest, newest = newest, now = now, ok = ok, retry = retry }
  end

  function sliding_window_log.times(it, st, after)
    -- next: the oldest entry leaving the window frees units; an empty log fills for a window.
    local nxt = st.oldest and st.oldest + it.window - st.now or 0
    if after then
      return left(it.limit, st.sum + it.cost), it.window, st.oldest and nxt or it.window
    end
    return left(it.limit, st.sum), st.newest and st.newest + it.window - st.now or 0, nxt
  end

  function sliding_window_log.commit(keys, now, it, st)
    if it.cost == 0 then
      return 0
    end
    local seq = redis.call('HINCRBY', keys[2], 'seq', 1)
    redis.call('ZADD', keys[1], int(now), int(seq) .. ':' .. int(it.cost))
    redis.call('HSET', keys[2], 'sum', int(st.sum + it.cost))
    expire_us(keys[1], it.window)
    expire_us(keys[2], it.window)
    return seq
  end

  function sliding_window_log.adjust(keys, now, it)
    local member = int(it.handle) .. ':' .. int(it.cost)
    local score = redis.call('ZSCORE', keys[1], member)
    if not score then
      return 0
    end
    redis.call('ZREM', keys[1], member)
    if it.new_cost > 0 then
      redis.call('ZADD', keys[1], score, int(it.handle) .. ':' .. int(it.new_cost))
    end
    local sum = math.max(0, num(redis.call('HGET', keys[2], 'sum'), 0) + it.new_cost - it.cost)
    redis.call('HSET', keys[2], 'sum', int(sum))
    return 1
  end

  return sliding_window_log
end
