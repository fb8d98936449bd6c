"""The Lua scripts of the Redis limits backend: admit, settle, seed.

Each runs atomically inside Redis, so replicas never race on a window or a budget.
All keys of a call share the hash tag ``{prefix}`` (one cluster slot). Money is in
integer nano-dollars (exact sums); time comes from Redis (``TIME``), not from the
replicas' clocks. Layout:

* rate window ``{p}:rate:<scope>:<what>:<ident>``: hash s (window start, s), c (this
  window), p (previous window); expires after three windows;
* budget ``{p}:budget:<kind>:<ident>``: hash start (period start, s), spent, reserved
  (nano-USD), warned, and usd/period/soft for reading;
* held reservations ``{p}:held:<kind>:<ident>``: sorted set of ``<id>|<nano-USD>`` scored
  by their expiry (ms), so a reservation whose replica died is released after the TTL.
"""

from __future__ import annotations

WINDOW_S = 60

# The sliding-window counter of limits/rate.py, on a hash; returns start, current, previous.
_ROLL = """
local function roll(key, now)
  local h = redis.call('HMGET', key, 's', 'c', 'p')
  local start = tonumber(h[1])
  local cur = tonumber(h[2]) or 0
  local prev = tonumber(h[3]) or 0
  if start == nil then
    return now - (now % 60), 0, 0
  end
  local elapsed = now - start
  if elapsed >= 60 then
    local periods = math.floor(elapsed / 60)
    if periods == 1 then prev = cur else prev = 0 end
    cur = 0
    start = start + periods * 60
  end
  return start, cur, prev
end
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# KEYS: nr rate windows, then (budget hash, held set) per budget.
# ARGV: nr, nb, amount (nano), member, ttl_ms, then (limit, amount) per rate,
#       then (usd nano, period start, soft pct, period name) per budget.
# Returns {0, used_1, newly_warned_1, ...} | {1, i, retry_s} | {2, j, spent, reserved} | {3, j}.
ADMIT = (
    _ROLL
    + """
local nr = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local member = ARGV[4]
local ttl = tonumber(ARGV[5])
local now = now_s()
local a = 6
local wins = {}
for i = 1, nr do
  local limit = tonumber(ARGV[a])
  local add = tonumber(ARGV[a + 1])
  a = a + 2
  local start, cur, prev = roll(KEYS[i], now)
  local used = prev * (1 - (now - start) / 60) + cur
  if used + add > limit and used > 0 then
    local at
    if add > limit then
      at = start + 120
    elseif cur + add <= limit then
      at = start + 60 * (1 - (limit - add - cur) / prev)
    else
      at = start + 60 * (2 - (limit - add) / cur)
    end
    return {1, i, tostring(math.max(0.001, at - now))}
  end
  wins[i] = {start, cur + add, prev}
end
local accounts = {}
local now_ms = math.floor(now * 1000)
for j = 1, nb do
  local hk = KEYS[nr + 2 * j - 1]
  local zk = KEYS[nr + 2 * j]
  local usd = tonumber(ARGV[a])
  local ps = tonumber(ARGV[a + 1])
  local h = redis.call('HMGET', hk, 'start', 'spent', 'reserved', 'warned')
  if h[1] == false then
    return {3, j}
  end
  local spent = tonumber(h[2]) or 0
  local reserved = tonumber(h[3]) or 0
  local warned = tonumber(h[4]) or 0
  local expired = redis.call('ZRANGEBYSCORE', zk, '-inf', now_ms)
  if #expired > 0 then
    for _, m in ipairs(expired) do
      reserved = reserved - (tonumber(string.match(m, '|(%d+)$')) or 0)
    end
    if reserved < 0 then reserved = 0 end
    redis.call('ZREMRANGEBYSCORE', zk, '-inf', now_ms)
    redis.call('HSET', hk, 'reserved', reserved)
  end
  if tonumber(h[1]) ~= ps then
    spent = 0
    warned = 0
    redis.call('HSET', hk, 'start', ps, 'spent', 0, 'warned', 0)
  end
  if spent + reserved + amount > usd then
    return {2, j, spent, reserved}
  end
  accounts[j] = {hk, zk, spent, reserved, warned, a}
  a = a + 4
end
for i = 1, nr do
  local w = wins[i]
  redis.call('HSET', KEYS[i], 's', w[1], 'c', w[2], 'p', w[3])
  redis.call('EXPIRE', KEYS[i], 180)
end
local out = {0}
for j = 1, nb do
  local acc = accounts[j]
  local b = acc[6]
  local usd = tonumber(ARGV[b])
  local soft = tonumber(ARGV[b + 2])
  local reserved = acc[4] + amount
  -- No expiry on the set: its members carry their own, purged above (an empty set disappears).
  redis.call('ZADD', acc[2], now_ms + ttl, member)
  local used = (acc[3] + reserved) / usd
  local newly = 0
  if used >= soft and acc[5] == 0 then
    newly = 1
    redis.call('HSET', acc[1], 'warned', 1)
  end
  redis.call('HSET', acc[1], 'reserved', reserved, 'usd', ARGV[b], 'soft', ARGV[b + 2], 'period', ARGV[b + 3])
  out[#out + 1] = tostring(used)
  out[#out + 1] = newly
end
return out
"""
)

# KEYS: (budget hash, held set) per budget, then nr rate windows.
# ARGV: nb, nr, member ('' when nothing was reserved), cost (nano), then amount per rate.
SETTLE = (
    _ROLL
    + """
local nb = tonumber(ARGV[1])
local nr = tonumber(ARGV[2])
local member = ARGV[3]
local cost = tonumber(ARGV[4])
local held = tonumber(string.match(member, '|(%d+)$')) or 0
for j = 1, nb do
  local hk = KEYS[2 * j - 1]
  local zk = KEYS[2 * j]
  local removed = redis.call('ZREM', zk, member)
  if redis.call('EXISTS', hk) == 1 then
    if removed == 1 then
      local reserved = (tonumber(redis.call('HGET', hk, 'reserved')) or 0) - held
      if reserved < 0 then reserved = 0 end
      redis.call('HSET', hk, 'reserved', reserved)
    end
    redis.call('HINCRBY', hk, 'spent', cost)
  end
end
if nr > 0 then
  local now = now_s()
  for i = 1, nr do
    local key = KEYS[2 * nb + i]
    local start, cur, prev = roll(key, now)
    redis.call('HSET', key, 's', start, 'c', cur + tonumber(ARGV[4 + i]), 'p', prev)
    redis.call('EXPIRE', key, 180)
  end
end
return 1
"""
)

# KEYS: budget hash. ARGV: period start, spent (nano). Sets the account only if it is missing,
# so replicas seeding at once agree and an account in use is never overwritten.
SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'start', ARGV[1], 'spent', ARGV[2], 'reserved', 0, 'warned', 0)
return 1
"""
