package redis

import goredis "github.com/redis/go-redis/v9"

// The scripts run with EVALSHA, falling back to EVAL when the server has not
// cached them (goredis.Script.Run). Each touches the keys of one hash slot
// only: the grant script reads record keys from the grant's index, which share
// the index's {grant} tag, so they are on the index's slot even when not
// declared in KEYS.

// grantScript applies changes to the records of one grant atomically. The
// conditions are all checked before anything is written, so a failed batch
// writes nothing.
//
// KEYS[1]   the grant index
// KEYS[2..] record keys: nd to deactivate, then nc to create, then nx to delete
// ARGV      now_us, nd, nc, nx, base (requestBase of the grant), nr (-1: no
//
//	revoke, 0: revoke all kinds, n > 0: revoke the n kinds that follow),
//	[kinds...], then per creation member, data, active, exp_us, exp_ms,
//	then per deletion member
//
// Returns {"ok", removed members...} (revoked ones, and deleted ones that existed) or {"notfound"|"inactive"|"conflict", i}
// with i the 1-based position of the failing record in its list.
//
// Order of application: deactivate, revoke, delete, create, so that a batch
// may revoke a grant's old tokens and create its new ones together.
var grantScript = goredis.NewScript(nowMsFunc + grantScriptBody)

// nowMsFunc defines nowMs(): Redis's clock in Unix milliseconds, read once per
// script run. Index pruning and expiry use the server's clock, and a script
// that maintains several indexes (grantPointersScript: the grant's and its
// owners') would otherwise ask for it each time; every redis.call costs a
// few microseconds on top of its command.
const nowMsFunc = `
local nowMsValue
local function nowMs()
  if not nowMsValue then
    local t = redis.call('TIME')
    nowMsValue = t[1] * 1000 + math.floor(t[2] / 1000)
  end
  return nowMsValue
end
`

const grantScriptBody = `
local now = tonumber(ARGV[1])
local nd, nc, nx = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local base, nr = ARGV[5], tonumber(ARGV[6])
local a = 7
local kinds = {}
if nr > 0 then
  for i = 1, nr do kinds[ARGV[a]] = true; a = a + 1 end
end
local cargs, dargs = a, a + 5 * nc

for i = 1, nd do
  local v = redis.call('HMGET', KEYS[1 + i], 'a', 'x')
  if not v[2] or tonumber(v[2]) <= now then return {'notfound', i} end
  if v[1] ~= '1' then return {'inactive', i} end
end
local fresh = {}
for i = 1, nc do
  local x = redis.call('HGET', KEYS[1 + nd + i], 'x')
  if x and tonumber(x) > now then return {'conflict', i} end
  -- Every record has x: without it the key is absent, and stays so (the
  -- steps before creation only delete).
  fresh[i] = not x
end

-- A batch that only creates records, on a grant whose index does not exist
-- yet (a client_credentials token, a sign-in's code), leaves an index that
-- holds exactly its records: nothing to prune, and its expiry is theirs.
local newIndex = nd == 0 and nx == 0 and nr < 0 and nc > 0 and redis.call('EXISTS', KEYS[1]) == 0
local latest = 0

for i = 1, nd do redis.call('HSET', KEYS[1 + i], 'a', '0') end
local removed = {'ok'}
if nr >= 0 then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local kind = string.match(m, '^([^:]*):')
    if nr == 0 or kinds[kind] then
      redis.call('DEL', base .. m)
      redis.call('ZREM', KEYS[1], m)
      removed[#removed + 1] = m
    end
  end
end
for i = 1, nx do
  local m = ARGV[dargs + i - 1]
  redis.call('ZREM', KEYS[1], m)
  if redis.call('DEL', KEYS[1 + nd + nc + i]) == 1 then removed[#removed + 1] = m end
end
for i = 1, nc do
  local k, o = KEYS[1 + nd + i], cargs + 5 * (i - 1)
  -- An expired record's key may still hold its fields until Redis drops it.
  if not fresh[i] then redis.call('DEL', k) end
  redis.call('HSET', k, 'd', ARGV[o + 1], 'a', ARGV[o + 2], 'x', ARGV[o + 3])
  redis.call('PEXPIREAT', k, ARGV[o + 4])
  redis.call('ZADD', KEYS[1], ARGV[o + 4], ARGV[o])
  latest = math.max(latest, tonumber(ARGV[o + 4]))
end

-- The index lives as long as its longest-lived record.
if newIndex then
  redis.call('PEXPIREAT', KEYS[1], latest)
  return removed
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs())
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top > 0 then redis.call('PEXPIREAT', KEYS[1], top[2]) end
return removed
`

// grantPointersScript is grantScript for a single server (never Cluster:
// signature pointers live on other slots), with the pointer work that
// ApplyRequests otherwise does in round trips of its own:
//
//   - before anything else, the pointers of the records to create, which the
//     caller SET NX in the same pipeline, must name this grant; when one does
//     not (taken, or a stale pointer to take over), nothing is written and
//     the reply is {"claimfail", i}, so the caller takes the careful path;
//   - after a successful apply, the pointers of the records deleted by name
//     are deleted if they still name this grant (as releaseScript), and the
//     grant joins its owner indexes (as ownerIndexScript) in the same atomic
//     step as its records.
//
// KEYS and ARGV are grantScript's, followed by np claimed pointer keys, then
// nrel pointer keys to release, then no owner index keys; and by np, nrel,
// the grant id, no, and per owner index its argument count and arguments.
var grantPointersScript = goredis.NewScript(nowMsFunc + ownerIndexFunc + `
local nd, nc, nx = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local nr = tonumber(ARGV[6])
local pa = 7 + math.max(nr, 0) + 5 * nc + nx
local np, nrel, gid = tonumber(ARGV[pa]), tonumber(ARGV[pa + 1]), ARGV[pa + 2]
local kb = 1 + nd + nc + nx
for i = 1, np do
  if redis.call('GET', KEYS[kb + i]) ~= gid then return {'claimfail', i} end
end
local function grant()
` + grantScriptBody + `
end
local r = grant()
if r[1] == 'ok' then
  for i = 1, nrel do
    local k = KEYS[kb + np + i]
    if redis.call('GET', k) == gid then redis.call('DEL', k) end
  end
  local o = pa + 3
  local no = tonumber(ARGV[o])
  o = o + 1
  for i = 1, no do
    local c = tonumber(ARGV[o])
    local a = {}
    for j = 1, c do a[j] = ARGV[o + j] end
    o = o + 1 + c
    ownerIndex(KEYS[kb + np + nrel + i], a)
  end
end
return r
`)

// indexScript maintains a sorted-set index whose scores are expiry times in
// Unix milliseconds: it applies one change, drops expired members and sets
// the key's expiry to the latest member's. "list" returns the remaining
// members; "add" and "rem" only their count, so that a sign-in stays O(log n)
// for a subject with thousands of sessions (a shared or scripted account).
//
// KEYS[1] the index; ARGV op ("add", "rem" or "list"), member, score
var indexScript = goredis.NewScript(nowMsFunc + `
if ARGV[1] == 'add' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
elseif ARGV[1] == 'rem' then
  redis.call('ZREM', KEYS[1], ARGV[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs())
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top > 0 then redis.call('PEXPIREAT', KEYS[1], top[2]) end
if ARGV[1] ~= 'list' then return redis.call('ZCARD', KEYS[1]) end
if #top == 0 then return {} end
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

// releaseScript deletes a signature pointer only if it still names the grant
// the caller wrote, so a pointer re-claimed by another grant survives.
//
// KEYS[1] the pointer; ARGV[1] the grant id
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// hitScript counts one event: the first hit of a window starts its expiry.
//
// KEYS[1] the counter; ARGV[1] the window in milliseconds
var hitScript = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`)

// takeoverScript moves a signature pointer from a grant whose record has
// expired to a new grant, unless someone else moved it first.
//
// KEYS[1] the pointer; ARGV old grant, new grant, expiry in Unix ms
var takeoverScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
`)

// getRequestScript reads a request record through its signature pointer in
// one round trip: GET the pointer, then HMGET d, a, x of the record it names
// (an empty reply when the pointer is absent). The record key is built here,
// as keys.request does (the grant escaped inside its {tag}), so it is not
// declared in KEYS and lies on another slot than the pointer: Redis Cluster
// refuses that, and GetRequest uses it only on a single server.
//
// KEYS[1] the pointer; ARGV[1] prefix.."req:", ARGV[2] the member "<kind>:<sig>"
var getRequestScript = goredis.NewScript(`
local g = redis.call('GET', KEYS[1])
if not g then return false end
local esc = string.gsub(g, '[%%{}]', {['%'] = '%25', ['{'] = '%7B', ['}'] = '%7D'})
return redis.call('HMGET', ARGV[1] .. '{' .. esc .. '}:' .. ARGV[2], 'd', 'a', 'x')
`)

// getRequestsScript is getRequestScript for several records: reply i is the
// HMGET of d, a, x for KEYS[i], or nil when that pointer is absent. Like
// getRequestScript it touches undeclared keys, so it runs on a single server
// only.
//
// KEYS the pointers; ARGV[1] prefix.."req:", ARGV[1+i] the member of KEYS[i]
var getRequestsScript = goredis.NewScript(`
local out = {}
for i = 1, #KEYS do
  local g = redis.call('GET', KEYS[i])
  if g then
    local esc = string.gsub(g, '[%%{}]', {['%'] = '%25', ['{'] = '%7B', ['}'] = '%7D'})
    out[i] = redis.call('HMGET', ARGV[1] .. '{' .. esc .. '}:' .. ARGV[1 + i], 'd', 'a', 'x')
  else
    out[i] = false
  end
end
return out
`)
