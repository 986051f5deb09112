package rediscache

import "github.com/redis/go-redis/v9"

// applyScript applies one write to the hash KEYS[1] if the write is newer
// than what the hash holds, and returns 1 if it applied it, 0 if not.
//
// ARGV: version (decimal), origin, op ("set" or "delete"), value, request
// ID, tombstone lifetime in milliseconds (0: no expiry).
//
// Versions are uint64, beyond the 2^53 a Lua number holds exactly, so they
// are compared as decimal strings: by length, then byte by byte. Origins are
// compared byte by byte too, as Go compares strings: Lua's own < follows the
// server's locale (strcoll), which could order two origins differently from
// dcsync.Request.Newer.
const applyScript = `
local function cmp(a, b)
  if a == b then return 0 end
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      if x < y then return -1 end
      return 1
    end
  end
  if #a < #b then return -1 end
  return 1
end

local ver, origin = ARGV[1], ARGV[2]
local cur = redis.call('HMGET', KEYS[1], 'ver', 'origin', 'del')
if cur[1] then
  local c
  if #ver ~= #cur[1] then
    c = (#ver < #cur[1]) and -1 or 1
  else
    c = cmp(ver, cur[1])
  end
  if c == 0 then c = cmp(origin, cur[2] or '') end
  if c <= 0 then return 0 end
end

-- Only a tombstone has a del field and an expiry: a set over a live
-- value, the common case, is one HSET.
if ARGV[3] == 'set' then
  redis.call('HSET', KEYS[1], 'v', ARGV[4], 'ver', ver, 'origin', origin, 'id', ARGV[5])
  if cur[3] then
    redis.call('HDEL', KEYS[1], 'del')
    redis.call('PERSIST', KEYS[1])
  end
else
  redis.call('HSET', KEYS[1], 'del', '1', 'ver', ver, 'origin', origin, 'id', ARGV[5])
  redis.call('HDEL', KEYS[1], 'v')
  if ARGV[6] ~= '0' then
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
  elseif cur[3] then
    redis.call('PERSIST', KEYS[1])
  end
end
return 1
`

// apply is the script, run by its SHA-1 (EVALSHA) and sent in full only
// when the server does not know it yet.
var apply = redis.NewScript(applyScript)

// isNoScript reports whether err is Redis's answer to EVALSHA of a script it
// has not loaded, as after a restart.
func isNoScript(err error) bool { return redis.HasErrorPrefix(err, "NOSCRIPT") }
