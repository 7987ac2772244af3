-- Appends one turn to a conversation session, atomically (layout: src/session/README.md).
-- KEYS[1] = the session's meta hash, KEYS[2] = its message list (same hash tag).
-- ARGV[1] api ('chat' | 'messages')   ARGV[2] ttl in ms   ARGV[3] max messages
-- ARGV[4] max bytes   ARGV[5] tenant   ARGV[6] id   ARGV[7] new Anthropic system ('' = none)
-- ARGV[8..] (kind, message JSON) pairs, oldest first, the reply last. kind: 'h' a system or
-- developer message that goes to the head of the conversation, 's' one that stays in place,
-- 'm' any other message.
-- List elements are a one-byte tag ('s' system/developer, 'm' other) followed by the JSON.
-- Returns the stored message count, or the error SESSION_API_MISMATCH.
local meta, list = KEYS[1], KEYS[2]
local api = ARGV[1]
local max_messages = tonumber(ARGV[3])
local max_bytes = tonumber(ARGV[4])
local SYSTEM = 115  -- string.byte('s')

local stored = redis.call('HGET', meta, 'api')
if stored and stored ~= api then
  return redis.error_reply('SESSION_API_MISMATCH the session was started with the ' .. stored ..
                           ' API')
end

local bytes = tonumber(redis.call('HGET', meta, 'b') or '0')
local ns = tonumber(redis.call('HGET', meta, 'ns') or '0')
local count = redis.call('LLEN', list)

-- Puts popped elements back at the head, in their original order.
local function push_back(held)
  for i = #held, 1, -1 do
    redis.call('LPUSH', list, held[i])
  end
end

-- A turn carrying system/developer messages replaces the stored ones: pop from the head until
-- all `ns` of them are gone (they usually are the first elements), keeping the others.
local replace = false
for i = 8, #ARGV, 2 do
  if ARGV[i] ~= 'm' then
    replace = true
    break
  end
end
if replace and ns > 0 then
  local held = {}
  while ns > 0 do
    local e = redis.call('LPOP', list)
    if not e then
      break
    end
    if string.byte(e, 1) == SYSTEM then
      ns = ns - 1
      count = count - 1
      bytes = bytes - (#e - 1)
    else
      held[#held + 1] = e
    end
  end
  push_back(held)
  ns = 0
end

local heads = {}
for i = 8, #ARGV, 2 do
  local kind, message = ARGV[i], ARGV[i + 1]
  if kind == 'h' then
    heads[#heads + 1] = 's' .. message
  else
    redis.call('RPUSH', list, (kind == 's' and 's' or 'm') .. message)
  end
  if kind ~= 'm' then
    ns = ns + 1
  end
  count = count + 1
  bytes = bytes + #message
end
push_back(heads)

if ARGV[7] ~= '' then
  redis.call('HSET', meta, 'sys', ARGV[7])
end

-- Trim the oldest non-system messages; system ones met on the way are put back in front.
if count > max_messages or bytes > max_bytes then
  local held = {}
  while count > ns and (count > max_messages or bytes > max_bytes) do
    local e = redis.call('LPOP', list)
    if not e then
      break
    end
    if string.byte(e, 1) == SYSTEM then
      held[#held + 1] = e
    else
      count = count - 1
      bytes = bytes - (#e - 1)
    end
  end
  push_back(held)
end

redis.call('HSET', meta, 'api', api, 'b', bytes, 'ns', ns, 't', ARGV[5], 'id', ARGV[6])
redis.call('PEXPIRE', meta, ARGV[2])
redis.call('PEXPIRE', list, ARGV[2])
return count
