"""The two Lua scripts that make the store's writes atomic and fenced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["APPEND_LUA", "DECLARE_DEAD_LUA", "Scripts"]

# Append events to several streams in one call, fenced by the caller's lease.
# KEYS: lease, then (stream key, meta key) per stream.
# ARGV: token, ttl_ms, then per stream: channel, first_seq, n, ended ("1"/"0"), n texts.
# Returns -1 if the lease is not the caller's; otherwise the 1-based positions of
# the streams it refused (owned by someone else, already ended, or a gap).
# Entries already written (a batch retried after a lost reply) are skipped, so a
# retry never duplicates: the explicit ids make that check one HGET.
APPEND_LUA = """
local token = ARGV[1]
if redis.call('GET', KEYS[1]) ~= token then return -1 end
local ttl = ARGV[2]
local a = 3
local refused = {}
for k = 2, #KEYS, 2 do
  local skey, mkey = KEYS[k], KEYS[k + 1]
  local chan, first, n, fin = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  a = a + 4
  local meta = redis.call('HMGET', mkey, 'owner', 'last', 'end')
  if not meta[1] and first == 0 then
    redis.call('HSET', mkey, 'owner', token, 'last', -1)
    meta = {token, '-1', false}
  end
  local from = -1
  if meta[1] == token and not meta[3] then from = tonumber(meta[2]) + 1 - first end
  if from < 0 then
    refused[#refused + 1] = k / 2
  elseif from < n then
    local parts = {}
    for i = from, n - 1 do
      local text = ARGV[a + i]
      redis.call('XADD', skey, (first + i) .. '-1', 'e', text)
      parts[#parts + 1] = text
    end
    if fin == '1' then
      redis.call('HSET', mkey, 'last', first + n - 1, 'end', '1')
    else
      redis.call('HSET', mkey, 'last', first + n - 1)
    end
    redis.call('PEXPIRE', skey, ttl)
    redis.call('PEXPIRE', mkey, ttl)
    redis.call('PUBLISH', chan, (first + from) .. '\\n' .. table.concat(parts, '\\n'))
  end
  a = a + n
end
return refused
"""

# End a stream whose owner's lease is gone with one terminal event.
# KEYS: stream key, meta key, the owner's lease. ARGV: seq, text, channel, ttl_ms.
# Returns 1 written, 0 owner alive, -1 already ended, -2 unknown, -3 seq moved on.
DECLARE_DEAD_LUA = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local meta = redis.call('HMGET', KEYS[2], 'last', 'end')
if not meta[1] then return -2 end
if meta[2] then return -1 end
if tonumber(meta[1]) + 1 ~= tonumber(ARGV[1]) then return -3 end
redis.call('XADD', KEYS[1], ARGV[1] .. '-1', 'e', ARGV[2])
redis.call('HSET', KEYS[2], 'last', ARGV[1], 'end', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[3], ARGV[1] .. '\\n' .. ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Scripts:
    """The scripts registered on one client (called with ``keys=``, ``args=``)."""

    # Any: redis-py's AsyncScript, whose replies it types loosely
    append: Any
    declare_dead: Any

    @classmethod
    def register(cls, redis_client: Any) -> Scripts:
        return cls(
            redis_client.register_script(APPEND_LUA),
            redis_client.register_script(DECLARE_DEAD_LUA),
        )
