-- fixed-window: one counter per window of `window` us aligned to the Unix epoch
-- (window index = floor(now / window)). State: HASH KEYS[1] {w = window index, c = units used
-- in it}, expiring when the window ends. Admits while c + cost <= limit. Up to twice the
-- limit can pass around a window boundary; that is the algorithm, not a bug.
local fixed_window = { nkeys = 1 }

function fixed_window.peek(keys, now, it)
  local idx = math.floor(now / it.window)
  local s = redis.call('HMGET', keys[1], 'w', 'c')
  local used = 0
  if num(s[1], -1) == idx then
    used = num(s[2], 0)
  end
  local ends = (idx + 1) * it.window - now
  local st = { idx = idx, used = used, ends = ends }
  st.ok = fits(used, it.cost, it.limit)
  local after = used + it.cost
  st.b_remaining, st.a_remaining = left(it.limit, used), left(it.limit, after)
  st.b_reset = used > 0 and ends or 0
  st.a_reset = after > 0 and ends or 0
  st.b_next, st.a_next = st.b_reset, st.a_reset
  if st.ok then
    st.retry = 0
  elseif it.cost > it.limit then
    st.retry = -1
  else
    st.retry = ends
  end
  return st
end

function fixed_window.commit(keys, now, it, st)
  redis.call('HSET', keys[1], 'w', int(st.idx), 'c', int(st.used + it.cost))
  expire_us(keys[1], st.ends)
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
