-- token-bucket as GCRA (generic cell rate algorithm). One unit is emitted every
-- T = window / limit us; the bucket holds `burst` units (default: the limit), a tolerance of
-- tau = burst * T. The theoretical arrival time TAT is stored as a debt d = TAT - t (us, a
-- double) with the time t it was written: HASH KEYS[1] {d, t}. Keeping the debt instead of
-- the absolute TAT keeps sub-microsecond precision in Lua's doubles (a 16-digit timestamp has
-- 0.25 us resolution; a debt of an hour has 0.5 ns). At `now` the debt is
-- max(0, d - (now - t)); a cost n is admitted when debt + n * T <= tau. The key expires when
-- the debt has run out (the bucket is full again).
-- Loaded on first use within a call (see ratelimit_common.lua).
local function load_token_bucket()
  local token_bucket = { nkeys = 1 }
  local TB_EPS = 1e-4 -- us: absorbs rounding in debt arithmetic, far below one unit

  -- Whole units available, the debt (reset) and the time until one more unit, at `debt`.
  local function tb_times(T, tau, debt)
    local avail = (tau - debt) / T + TB_EPS / T
    local whole = math.max(0, math.floor(avail))
    local next = 0
    if debt > TB_EPS then
      next = math.max(0, (whole + 1 - avail) * T)
    end
    return whole, math.max(0, debt), next
  end

  local function tb_debt(key, now)
    local s = redis.call('HMGET', key, 'd', 't')
    local d, t = num(s[1], 0), num(s[2], now)
    return math.max(0, d - math.max(0, now - t))
  end

  function token_bucket.peek(keys, now, it)
    local T = it.window / it.limit
    local tau = it.burst * T
    local d = tb_debt(keys[1], now)
    local nd = d + it.cost * T
    local ok
    if it.cost == 0 then
      ok = d < tau - TB_EPS
    else
      ok = nd <= tau + TB_EPS
    end
    local retry = 0
    if ok then
      retry = 0
    elseif it.cost > it.burst then
      retry = -1
    else
      retry = math.max(1, nd - tau)
    end
    -- One constructor: the table is sized once instead of growing field by field.
    return { T = T, tau = tau, d = d, nd = nd, ok = ok, retry = retry }
  end

  function token_bucket.times(it, st, after)
    return tb_times(st.T, st.tau, after and st.nd or st.d)
  end

  function token_bucket.commit(keys, now, it, st)
    redis.call('HSET', keys[1], 'd', real(st.nd), 't', int(now))
    expire_us(keys[1], st.nd)
    return 0
  end

  function token_bucket.adjust(keys, now, it)
    local T = it.window / it.limit
    local d = math.max(0, tb_debt(keys[1], now) + (it.new_cost - it.cost) * T)
    if d <= 0 then
      redis.call('DEL', keys[1])
      return 1
    end
    redis.call('HSET', keys[1], 'd', real(d), 't', int(now))
    expire_us(keys[1], d)
    return 1
  end

  return token_bucket
end
