/**
 * Lua for the Redis presence driver. Every change runs as one script, so the before/after
 * comparison, the write and the revision bump are atomic: of two instances sweeping the same
 * dead viewer, exactly one sees a change (and announces it).
 *
 * Data (all keys share the `{gw}` hash tag of the cluster liveness set, so on a Redis Cluster the
 * scripts run in one slot and read every key they touch as a declared key):
 * - `presence:t:<ticket>`: hash socketId → {"u","n","r","i"} (user, name, role, instance)
 * - `instances`: the cluster liveness zset, instanceId → heartbeat expiry (ms, Redis clock)
 * - `presence:i:<instance>`: set of tickets where that instance holds viewers (what a sweep must visit)
 * - `presence:rev`: one counter for every ticket's revision
 * Entries of an instance whose heartbeat expired are left out of every list at once, and deleted
 * (and announced) by the next sweep.
 */

const PRELUDE = /* lua */ `
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- the viewer list as user -> encoded viewer; liveOnly leaves out entries of dead instances
local function view(hash, instances, now, liveOnly)
  local flat = redis.call('HGETALL', hash)
  local alive, users, entries = {}, {}, {}
  for i = 1, #flat, 2 do
    local e = cjson.decode(flat[i + 1])
    local live = alive[e.i]
    if live == nil then
      local s = redis.call('ZSCORE', instances, e.i)
      live = (s ~= false and s ~= nil and tonumber(s) > now)
      alive[e.i] = live
    end
    entries[#entries + 1] = { flat[i], e, live }
    if live or not liveOnly then
      local key = cjson.encode({ e.u, e.n, e.r })
      local held = users[e.u]
      if held == nil or key < held then users[e.u] = key end
    end
  end
  return users, entries
end
local function same(a, b)
  for k, v in pairs(a) do if b[k] ~= v then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
-- 1 when an instance other than id holds an entry (live or not): its sockets may be in the room
local function elsewhere(entries, id)
  for _, entry in ipairs(entries) do if entry[2].i ~= id then return 1 end end
  return 0
end
-- { changed, rev, extra, remote, viewer... }; remote: 0 when no other instance holds a viewer here
local function result(revKey, before, after, extra, remote)
  local changed = not same(before, after)
  local rev
  if changed then rev = redis.call('INCR', revKey) else rev = tonumber(redis.call('GET', revKey) or '0') end
  local out = { changed and 1 or 0, rev, extra or 0, remote or 1 }
  for _, v in pairs(after) do out[#out + 1] = v end
  return out
end
-- heartbeat: returns 1 when this instance was still alive before the beat
local function beat(instances, id, now, ttl)
  local s = redis.call('ZSCORE', instances, id)
  local was = (s ~= false and s ~= nil and tonumber(s) > now) and 1 or 0
  -- GT: never shorten a beat; a missing member is still added
  redis.call('ZADD', instances, 'GT', now + ttl, id)
  return was
end
`;

/** KEYS: ticket hash, instances, rev, instance tickets. ARGV: socketId, entry json, ticketId, instanceId, ttlMs */
export const JOIN = PRELUDE + /* lua */ `
local now = nowms()
local was = beat(KEYS[2], ARGV[4], now, tonumber(ARGV[5]))
local before = view(KEYS[1], KEYS[2], now, true)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
local after, entries = view(KEYS[1], KEYS[2], now, true)
return result(KEYS[3], before, after, was, elsewhere(entries, ARGV[4]))
`;

/** KEYS: ticket hash, instances, rev, instance tickets. ARGV: socketId, ticketId, "1" when no local socket is left on the ticket, instanceId */
export const LEAVE = PRELUDE + /* lua */ `
local now = nowms()
local before = view(KEYS[1], KEYS[2], now, true)
redis.call('HDEL', KEYS[1], ARGV[1])
if ARGV[3] == '1' then redis.call('SREM', KEYS[4], ARGV[2]) end
local after, entries = view(KEYS[1], KEYS[2], now, true)
return result(KEYS[3], before, after, 0, elsewhere(entries, ARGV[4]))
`;

/** KEYS: ticket hash, instances, rev */
export const VIEWERS = PRELUDE + /* lua */ `
local now = nowms()
local users = view(KEYS[1], KEYS[2], now, true)
return result(KEYS[3], users, users, 0)
`;

/**
 * Delete the entries of dead instances. "before" counts them (clients still show them), "after"
 * does not, so the one sweeper that deletes them reports the change.
 * KEYS: ticket hash, instances, rev
 */
export const PURGE = PRELUDE + /* lua */ `
local now = nowms()
local before, entries = view(KEYS[1], KEYS[2], now, false)
local removed = 0
for _, entry in ipairs(entries) do
  if not entry[3] then removed = removed + redis.call('HDEL', KEYS[1], entry[1]) end
end
local after = view(KEYS[1], KEYS[2], now, true)
return result(KEYS[3], before, after, removed)
`;

/**
 * Make this instance's entries on one ticket exactly the given ones (resync after an outage, or
 * none at close). KEYS: ticket hash, instances, rev, instance tickets.
 * ARGV: instanceId, ticketId, ttlMs ("0": do not beat), then socketId, entry json pairs
 */
export const SYNC = PRELUDE + /* lua */ `
local now = nowms()
if tonumber(ARGV[3]) > 0 then beat(KEYS[2], ARGV[1], now, tonumber(ARGV[3])) end
local before, entries = view(KEYS[1], KEYS[2], now, true)
local wanted = {}
for i = 4, #ARGV, 2 do wanted[ARGV[i]] = ARGV[i + 1] end
for _, entry in ipairs(entries) do
  if entry[2].i == ARGV[1] and wanted[entry[1]] == nil then redis.call('HDEL', KEYS[1], entry[1]) end
end
local any = false
for field, json in pairs(wanted) do
  redis.call('HSET', KEYS[1], field, json)
  any = true
end
if any then redis.call('SADD', KEYS[4], ARGV[2]) else redis.call('SREM', KEYS[4], ARGV[2]) end
local after = view(KEYS[1], KEYS[2], now, true)
return result(KEYS[3], before, after, 0)
`;

