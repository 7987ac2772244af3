-- Deletes the cache entry in KEYS[1] unless the key holds a coalescing lock marker (a value
-- starting with ARGV[1], kLockMarkerPrefix): an admin purge removes answers, never the lock of
-- a provider call in flight, whose waiters on other instances would otherwise call the
-- provider again. GETRANGE reads only the prefix, whatever the entry's size.
-- Returns 1 when an entry was deleted, 0 when the key was absent or held a marker.
if redis.call('GETRANGE', KEYS[1], 0, string.len(ARGV[1]) - 1) == ARGV[1] then
  return 0
end
return redis.call('DEL', KEYS[1])
