-- Stores one Responses API answer in one atomic call (layout: src/responses/README.md).
-- KEYS[1] = the response's hash. ARGV = ttl_ms, then field/value pairs.
-- Replaces what the key held, so a record never mixes two saves, and sets the TTL.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
