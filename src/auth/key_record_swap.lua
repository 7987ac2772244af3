-- Replaces a virtual key's record KEYS[1] (k:h:<sha>) with ARGV[2] only while it still holds
-- ARGV[1], the text the caller read: revoke and rotate are read-modify-write, and two admins
-- racing must not undo each other (a lost revoke would keep a key alive).
-- Returns 1 when replaced, 0 when the record changed (or vanished) meanwhile.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
