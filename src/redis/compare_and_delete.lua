-- Deletes KEYS[1] only while it still holds ARGV[1] (the owner's token): releases a lock
-- (e.g. the cache's fill lock for request coalescing) without ever removing a lock that
-- expired and was taken by someone else. Returns 1 when deleted, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
