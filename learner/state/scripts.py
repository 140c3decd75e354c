"""Every Lua script the learner runs in Redis: check-and-act steps that must be atomic.

Each is a named constant whose comment states its KEYS, ARGV and reply, as redis-py's own lock
does. Checks happen inside the script, never as a read in Python followed by a write. Refusals
are error replies whose first word is a code (``FENCED``, ``HEAD_MOVED``, ...) that
:mod:`learner.state.snapshots` turns into a typed exception; no other text is ever matched.
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE_LEASE",
    "DELETE_SNAPSHOT",
    "RELEASE_LEASE",
    "RENEW_LEASE",
    "ROLLBACK",
    "WRITE_LIVE",
    "WRITE_SNAPSHOT",
    "refusal_code",
]

# KEYS[1] head, KEYS[2] versions (zset), KEYS[3] this snapshot's hash, KEYS[4] lease hash,
# KEYS[5] rollback hash
# ARGV[1] version, ARGV[2] meta JSON, ARGV[3] signature, ARGV[4] blob,
# ARGV[5] the writer's lease epoch ('' = no lease), ARGV[6] the head the writer descends from ('' = none),
# ARGV[7] the rollbacks the writer has adopted ('' = do not check), ARGV[8] '0' to store the snapshot
# without making it the head (a promotion, which a rollback then makes the head), else '1'
# Reply: 1, or an error reply starting with FENCED, HEAD_MOVED or ROLLED_BACK. The last one catches
# a rollback to the version that is still the head, which leaves the head where it was.
WRITE_SNAPSHOT = """
if ARGV[5] ~= '' then
  local epoch = redis.call('HGET', KEYS[4], 'epoch')
  if epoch ~= ARGV[5] then
    return redis.error_reply('FENCED lease epoch is ' .. tostring(epoch) .. ', this writer has ' .. ARGV[5])
  end
end
local head = redis.call('GET', KEYS[1]) or ''
if head ~= ARGV[6] then
  return redis.error_reply('HEAD_MOVED head is ' .. head .. ', this writer descends from ' .. ARGV[6])
end
if ARGV[7] ~= '' then
  local seq = redis.call('HGET', KEYS[5], 'seq') or '0'
  if seq ~= ARGV[7] then
    return redis.error_reply('ROLLED_BACK rollback ' .. seq .. ' happened, this writer has seen ' .. ARGV[7])
  end
end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('HSET', KEYS[3], 'meta', ARGV[2], 'sig', ARGV[3], 'blob', ARGV[4])
if ARGV[8] ~= '0' then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""

# KEYS[1] head, KEYS[2] versions, KEYS[3] pinned (set), KEYS[4] the snapshot's hash; ARGV[1] version
# Reply: 1 when deleted, 0 when it did not exist, an error reply IS_HEAD or IS_PINNED.
DELETE_SNAPSHOT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.error_reply('IS_HEAD version ' .. ARGV[1] .. ' is the head') end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then
  return redis.error_reply('IS_PINNED version ' .. ARGV[1] .. ' is pinned')
end
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[4])
"""

# KEYS[1] head, KEYS[2] the target snapshot's hash, KEYS[3] rollback hash
# ARGV[1] version, ARGV[2] replay (0/1), ARGV[3] time, ARGV[4] the head the caller read ('' = none),
# ARGV[5] the stream position to continue from (JSON; '' with replay: the version's own offsets)
# Reply: the previous head ('' if none), or an error reply NO_SNAPSHOT, or HEAD_MOVED when the head
# moved since the caller read it (the position was computed from it).
# 'seq' counts rollbacks: a rollback to the version that is already the head must still be seen.
ROLLBACK = """
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('NO_SNAPSHOT ' .. ARGV[1]) end
local previous = redis.call('GET', KEYS[1]) or ''
if previous ~= ARGV[4] then return redis.error_reply('HEAD_MOVED') end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], 'version', ARGV[1], 'replay', ARGV[2], 'at', ARGV[3])
redis.call('HINCRBY', KEYS[3], 'seq', 1)
if ARGV[5] == '' then
  redis.call('HDEL', KEYS[3], 'position_of', 'position')
else
  redis.call('HSET', KEYS[3], 'position_of', ARGV[1], 'position', ARGV[5])
end
return previous
"""

# KEYS[1] lease hash, KEYS[2] epoch counter; ARGV[1] holder token, ARGV[2] ttl in ms, ARGV[3] who
# Reply: the new epoch, or 0 when another holder has the lease.
ACQUIRE_LEASE = """
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1] then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'epoch', epoch, 'who', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return epoch
"""

# KEYS[1] lease hash, KEYS[2] epoch counter; ARGV[1] holder token, ARGV[2] epoch, ARGV[3] ttl in ms, ARGV[4] who
# Reply: 1 when renewed, 0 when the lease is no longer ours. A lease that expired while nobody took
# it (the epoch counter has not moved) is taken back with the same epoch: no one else can have written.
RENEW_LEASE = """
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder == ARGV[1] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if not holder and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'epoch', ARGV[2], 'who', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"""

# KEYS[1] lease hash, KEYS[2] live hash; ARGV[1] the writer's lease epoch, ARGV[2] meta JSON,
# ARGV[3] signature, ARGV[4] blob. Reply: 1, or an error reply FENCED (a paused or replaced learner
# must not hand replicas a model from a lineage that is no longer the writer's).
WRITE_LIVE = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch ~= ARGV[1] then
  return redis.error_reply('FENCED lease epoch is ' .. tostring(epoch) .. ', this writer has ' .. ARGV[1])
end
redis.call('HSET', KEYS[2], 'meta', ARGV[2], 'sig', ARGV[3], 'blob', ARGV[4])
return 1
"""

# KEYS[1] lease hash; ARGV[1] holder token. Reply: 1 when released, 0 when it was not ours.
RELEASE_LEASE = """
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def refusal_code(error: Exception) -> str:
    """The code word a script's error reply starts with (``FENCED``, ``HEAD_MOVED``, ...).

    >>> refusal_code(Exception("HEAD_MOVED head is 3, this writer descends from 2"))
    'HEAD_MOVED'
    """
    return str(error).split(" ", 1)[0]
