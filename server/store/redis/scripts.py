"""The two Lua scripts that make the store's writes atomic and fenced, and how
they are called on one Redis or on a cluster.

Fencing is per stream, in the stream's own meta hash (its slot): ``owner``
(the lease token of the process generating it) and ``epoch`` (1 when created,
bumped when someone declares the stream dead). The append script writes only
if both are the caller's and the stream has not ended, so a generator declared
dead can never append again, whichever node holds the stream. A script only
ever touches the keys of the streams of one hash slot: on a cluster the
batcher calls it once per slot group, pipelined per node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .connection import Target

__all__ = ["APPEND_LUA", "DECLARE_DEAD_LUA", "FENCED", "Scripts"]

#: An append refusal code: the stream is someone else's, or ended, or its epoch moved on.
FENCED = -2

# Append events to one or more streams (on a cluster: all in one slot).
# KEYS: one, the first stream's log (it names the slot, so a cluster node
#       answers MOVED/ASK before running anything; the other streams' keys are
#       in the same slot, made here from their ids: one argument per stream
#       instead of eight is far less to encode and parse on both sides).
# ARGV: key prefix, token, ttl_ms, publish command ('' = the caller publishes,
#       after WAIT), then per stream one argument: "TAGGED FIRST N ENDED EPOCH",
#       a newline, and its n texts joined by newlines (compact JSON has no raw
#       newline). TAGGED is the id as the keys hold it ("{tag}rest", Keys).
# Returns a flat list of refusals, (1-based position, code) each: code -2 the
# stream is fenced (not ours, ended, or another epoch); code >= -1 the log ends
# at seq `code`, before `first_seq - 1` (a tail lost in a failover: the caller
# writes again from `code + 1`).
# Entries already written (a batch retried after a lost reply) are skipped, so a
# retry never duplicates: the explicit ids make that check one HMGET.
APPEND_LUA = """
local prefix, token, ttl, publish = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local refused = {}
for a = 5, #ARGV do
  local arg = ARGV[a]
  local tid, first, n, fin, epoch, at = string.match(arg, '^(%S+) (%d+) (%d+) (%d) (%S+)\\n()')
  first, n = tonumber(first), tonumber(n)
  local skey, mkey = prefix .. 's:' .. tid, prefix .. 'm:' .. tid
  local meta = redis.call('HMGET', mkey, 'owner', 'epoch', 'last', 'end')
  if not meta[1] and first == 0 then
    redis.call('HSET', mkey, 'owner', token, 'epoch', epoch, 'last', -1)
    meta = {token, epoch, '-1', false}
  end
  if not meta[1] then
    refused[#refused + 1] = a - 4
    refused[#refused + 1] = -1
  elseif meta[1] ~= token or meta[2] ~= epoch or meta[4] then
    refused[#refused + 1] = a - 4
    refused[#refused + 1] = -2
  else
    local from = tonumber(meta[3]) + 1 - first
    if from < 0 then
      refused[#refused + 1] = a - 4
      refused[#refused + 1] = tonumber(meta[3])
    elseif from < n then
      local i = 0
      local parts = {}
      local joined = string.sub(arg, at)
      for text in string.gmatch(joined, '[^\\n]+') do
        if i >= from then
          redis.call('XADD', skey, (first + i) .. '-1', 'e', text)
          if from > 0 then parts[#parts + 1] = text end
        end
        i = i + 1
      end
      if fin == '1' then
        redis.call('HSET', mkey, 'last', first + n - 1, 'end', '1')
      else
        redis.call('HSET', mkey, 'last', first + n - 1)
      end
      redis.call('PEXPIRE', skey, ttl)
      redis.call('PEXPIRE', mkey, ttl)
      if publish ~= '' then
        if from > 0 then joined = table.concat(parts, '\\n') end
        redis.call(publish, prefix .. 'c:' .. tid, (first + from) .. '\\n' .. joined)
      end
    end
  end
end
return refused
"""

# End a stream whose owner's lease is gone with one terminal event, and bump
# its epoch (the owner, if it comes back, is fenced out).
# KEYS: stream key, meta key. ARGV: the dead owner's token, seq, text, channel,
# ttl_ms, publish command.
# Returns 1 written, 0 owned by another, -1 already ended, -2 unknown, -3 seq moved on.
# (Whether the owner's lease is gone is asked before, of its own key, which may
# live in another slot: a lease, once lapsed, never comes back under the same
# token, so the answer cannot go stale.)
DECLARE_DEAD_LUA = """
local meta = redis.call('HMGET', KEYS[2], 'owner', 'last', 'end')
if not meta[1] then return -2 end
if meta[3] then return -1 end
if meta[1] ~= ARGV[1] then return 0 end
if tonumber(meta[2]) + 1 ~= tonumber(ARGV[2]) then return -3 end
redis.call('XADD', KEYS[1], ARGV[2] .. '-1', 'e', ARGV[3])
redis.call('HSET', KEYS[2], 'last', ARGV[2], 'end', '1')
redis.call('HINCRBY', KEYS[2], 'epoch', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call(ARGV[6], ARGV[4], ARGV[2] .. '\\n' .. ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Scripts:
    """The scripts registered on one client (called with ``keys=``, ``args=``)."""

    # Any: redis-py's AsyncScript, whose replies it types loosely
    append: Any
    declare_dead: Any
    target: Target

    @property
    def publish(self) -> str:
        return self.target.publish

    @classmethod
    async def register(cls, redis_client: Any, target: Target) -> Scripts:
        if target.cluster:
            await redis_client.script_load(APPEND_LUA)  # every master: pipelined EVALSHAs
        return cls(
            redis_client.register_script(APPEND_LUA),
            redis_client.register_script(DECLARE_DEAD_LUA),
            target,
        )
