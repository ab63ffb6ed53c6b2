-- Apply one folded batch, or one slot's part of it (gridwatch.store.AsyncStore.apply).
--
-- ARGV[1] is the mode, ARGV[2] the writes as JSON (gridwatch.store.Part), which
-- name their keys by number: key n is KEYS[base + n]. Every key the script touches is
-- declared, so on a Redis Cluster all of them share one slot.
--
--   'all'    one server: KEYS[1] offsets, KEYS[2] watermarks, KEYS[3] record versions,
--            KEYS[4] the pending batches (unused); the whole batch in one step.
--   'stage'  a cluster's core slot ({core}): the same checks and the core slot's writes,
--            and the other slots' parts (ARGV[3]) kept in KEYS[4] under the batch id
--            (ARGV[4]) until every part is applied (gridwatch.store).
--   'part'   a cluster's other slot: KEYS[1] the slot's applied marks; the part is
--            applied once: skipped ({2}) when its marks say it was.
--
-- The writes are grouped by key: every key gets one call per kind of write, with all
-- its fields or members in it (chunked under Lua's stack limit), so a batch costs a few
-- calls per distinct key, not one per event.
local mode, p = ARGV[1], cjson.decode(ARGV[2])
-- a kind of write the batch has none of is left out of the payload
for _, op in ipairs({'o', 'c', 'w', 'i', 'h', 'hd', 'mx', 'mn', 's', 'z', 'zr', 'zt', 'zk',
                     'sr', 'hz', 't', 'd', 'e', 'x'}) do
  if p[op] == nil then p[op] = {} end
end
local base = 4
if mode == 'part' then base = 1 end
local function K(n) return KEYS[base + n] end

if mode == 'part' then
  -- marks: {partition field, last offset} of a batch; an update without offsets (a
  -- command, a timer) has a marks key of its own, {'u', 1}, that expires in a week
  for _, o in ipairs(p.o) do
    local cur = redis.call('HGET', KEYS[1], o[1])
    if cur and tonumber(cur) >= tonumber(o[2]) then return {2} end
  end
else
  -- First the checks: every partition's stored offset must be the one the batch was
  -- folded against, and every record's version the one it was read at; otherwise
  -- nothing changes and the reply says which ({0, field, stored}), so the worker folds
  -- again. A partition with a batch still pending (a cluster's parts not all applied)
  -- is refused the same way, until that batch is completed.
  for _, o in ipairs(p.o) do
    local cur = redis.call('HGET', KEYS[1], o[1])
    if not cur then cur = '-1' end
    if cur ~= o[2] then return {0, o[1], cur} end
    if mode == 'stage' and redis.call('HEXISTS', KEYS[4], 'p:' .. o[1]) == 1 then
      return {0, o[1], 'pending'}
    end
  end
  -- {record key, version read, its own version key (0: a field of KEYS[3]), TTL}
  for _, c in ipairs(p.c) do
    local cur
    if c[3] > 0 then cur = redis.call('GET', KEYS[base + c[3]]) else cur = redis.call('HGET', KEYS[3], c[1]) end
    if not cur then cur = '0' end
    if cur ~= c[2] then return {0, c[1], cur} end
  end
end

local CHUNK = 500  -- items per call: unpack() of up to 1,000 arguments stays far under the limit

-- call(cmd, key, flat list of arguments, items of `width` arguments each)
local function variadic(cmd, key, args, width)
  local step = CHUNK * width
  for k = 1, #args, step do
    redis.call(cmd, key, unpack(args, k, math.min(k + step - 1, #args)))
  end
end

if mode ~= 'part' then
  for _, o in ipairs(p.o) do redis.call('HSET', KEYS[1], o[1], o[3]) end
  if #p.w > 0 then variadic('HSET', KEYS[2], p.w, 2) end
end
-- counters: {key, {field, n, field, n, ...}}
for _, i in ipairs(p.i) do
  local key, f = K(i[1]), i[2]
  for k = 1, #f, 2 do redis.call('HINCRBY', key, f[k], f[k + 1]) end
end
-- counters taken back: {key, field, n, whole}; at zero the field goes (whole: the key)
for _, z in ipairs(p.hz) do
  if redis.call('HINCRBY', K(z[1]), z[2], -z[3]) <= 0 then
    if z[4] == 1 then redis.call('DEL', K(z[1])) else redis.call('HDEL', K(z[1]), z[2]) end
  end
end
for _, h in ipairs(p.h) do variadic('HSET', K(h[1]), h[2], 2) end
for _, h in ipairs(p.hd) do variadic('HDEL', K(h[1]), h[2], 1) end
-- keep-the-larger / keep-the-smaller fields: one HMGET and at most one HSET per key
local function keep(list, larger)
  for _, m in ipairs(list) do
    local key, f = K(m[1]), m[2]
    for first = 1, #f, 2 * CHUNK do
      local last = math.min(first + 2 * CHUNK - 1, #f)
      local names = {}
      for k = first, last, 2 do names[#names + 1] = f[k] end
      local cur = redis.call('HMGET', key, unpack(names))
      local out = {}
      for k = first, last, 2 do
        local old, new = cur[(k - first) / 2 + 1], tonumber(f[k + 1])
        if (not old) or (larger and new > tonumber(old)) or ((not larger) and new < tonumber(old)) then
          out[#out + 1] = f[k]
          out[#out + 1] = f[k + 1]
        end
      end
      if #out > 0 then redis.call('HSET', key, unpack(out)) end
    end
  end
end
keep(p.mx, true)
keep(p.mn, false)
for _, s in ipairs(p.s) do variadic('SADD', K(s[1]), s[2], 1) end
for _, s in ipairs(p.sr) do variadic('SREM', K(s[1]), s[2], 1) end
-- sorted sets: {key, {score, member, score, member, ...}}
for _, z in ipairs(p.z) do variadic('ZADD', K(z[1]), z[2], 2) end
for _, z in ipairs(p.zr) do variadic('ZREM', K(z[1]), z[2], 1) end
for _, z in ipairs(p.zt) do redis.call('ZREMRANGEBYSCORE', K(z[1]), '-inf', '(' .. z[2]) end
-- keep only members within {key, span} of the key's own newest member
for _, z in ipairs(p.zk) do
  local top = redis.call('ZRANGE', K(z[1]), -1, -1, 'WITHSCORES')
  if top[2] then
    redis.call('ZREMRANGEBYSCORE', K(z[1]), '-inf',
                '(' .. string.format('%.17g', tonumber(top[2]) - tonumber(z[2])))
  end
end
for _, t in ipairs(p.t) do
  if t[3] > 0 then redis.call('SET', K(t[1]), t[2], 'EX', t[3]) else redis.call('SET', K(t[1]), t[2]) end
end
for _, d in ipairs(p.d) do redis.call('DEL', K(d)) end
for _, e in ipairs(p.e) do redis.call('EXPIRE', K(e[1]), e[2]) end
for _, x in ipairs(p.x) do
  redis.call('XADD', K(x[1]), 'MAXLEN', '~', x[2], '*', 'd', x[3])
end

if mode == 'part' then
  for _, o in ipairs(p.o) do redis.call('HSET', KEYS[1], o[1], o[2]) end
  if p.u then redis.call('EXPIRE', KEYS[1], 7 * 86400) end  -- a mark of its own
  return {1}
end
for _, c in ipairs(p.c) do
  if c[3] > 0 then
    redis.call('SET', K(c[3]), tostring(tonumber(c[2]) + 1), 'EX', c[4])
  else
    redis.call('HINCRBY', KEYS[3], c[1], 1)
  end
end
if mode == 'stage' and ARGV[3] ~= '' then
  redis.call('HSET', KEYS[4], 'b:' .. ARGV[4], ARGV[3])
  for _, o in ipairs(p.o) do redis.call('HSET', KEYS[4], 'p:' .. o[1], ARGV[4]) end
end
return {1}
