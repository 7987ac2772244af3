-- Reads one conversation session in one atomic call (layout: src/session/README.md).
-- KEYS[1] = the session's meta hash, KEYS[2] = its message list.
-- Returns {} when there is no session, else {api, system, bytes, pttl, {tagged messages...}}.
local m = redis.call('HMGET', KEYS[1], 'api', 'sys', 'b')
if not m[1] then
  return {}
end
return {m[1], m[2] or '', m[3] or '0', redis.call('PTTL', KEYS[1]),
        redis.call('LRANGE', KEYS[2], 0, -1)}
