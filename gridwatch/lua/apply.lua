-- Apply one folded batch atomically (gridwatch.store.AsyncStore.apply).
--
-- KEYS[1] offsets, KEYS[2] watermarks, KEYS[3] record versions. ARGV[1] is the batch
-- as JSON (gridwatch.store.encode_update), grouped by key: every key gets one call per
-- kind of write, with all its fields or members in it (chunked under Lua's stack
-- limit), so a batch costs a few calls per distinct key, not one per event.
--
-- First the checks: every partition's stored offset must be the one the batch was
-- folded against, and every record's version the one it was read at; otherwise nothing
-- changes and the reply says which ({0, field, stored}), so the worker folds again.
local p = cjson.decode(ARGV[1])
for _, o in ipairs(p.o) do
  local cur = redis.call('HGET', KEYS[1], o[1])
  if not cur then cur = '-1' end
  if cur ~= o[2] then return {0, o[1], cur} end
end
for _, c in ipairs(p.c) do
  local cur = redis.call('HGET', KEYS[3], c[1])
  if not cur then cur = '0' end
  if cur ~= c[2] then return {0, c[1], cur} end
end

local CHUNK = 500  -- items per call: unpack() of up to 1,000 arguments stays far under the limit

-- call(cmd, key, flat list of arguments, items of `width` arguments each)
local function variadic(cmd, key, args, width)
  local step = CHUNK * width
  for k = 1, #args, step do
    redis.call(cmd, key, unpack(args, k, math.min(k + step - 1, #args)))
  end
end

for _, o in ipairs(p.o) do redis.call('HSET', KEYS[1], o[1], o[3]) end
if #p.w > 0 then variadic('HSET', KEYS[2], p.w, 2) end
-- counters: {key, {field, n, field, n, ...}}
for _, i in ipairs(p.i) do
  local f = i[2]
  for k = 1, #f, 2 do redis.call('HINCRBY', i[1], f[k], f[k + 1]) end
end
-- counters taken back: {key, field, n, whole}; at zero the field goes (whole: the key)
for _, z in ipairs(p.hz) do
  if redis.call('HINCRBY', z[1], z[2], -z[3]) <= 0 then
    if z[4] == 1 then redis.call('DEL', z[1]) else redis.call('HDEL', z[1], z[2]) end
  end
end
for _, h in ipairs(p.h) do variadic('HSET', h[1], h[2], 2) end
for _, h in ipairs(p.hd) do variadic('HDEL', h[1], h[2], 1) end
-- keep-the-larger / keep-the-smaller fields: one HMGET and at most one HSET per key
local function keep(list, larger)
  for _, m in ipairs(list) do
    local f = m[2]
    for first = 1, #f, 2 * CHUNK do
      local last = math.min(first + 2 * CHUNK - 1, #f)
      local names = {}
      for k = first, last, 2 do names[#names + 1] = f[k] end
      local cur = redis.call('HMGET', m[1], unpack(names))
      local out = {}
      for k = first, last, 2 do
        local old, new = cur[(k - first) / 2 + 1], tonumber(f[k + 1])
        if (not old) or (larger and new > tonumber(old)) or ((not larger) and new < tonumber(old)) then
          out[#out + 1] = f[k]
          out[#out + 1] = f[k + 1]
        end
      end
      if #out > 0 then redis.call('HSET', m[1], unpack(out)) end
    end
  end
end
keep(p.mx, true)
keep(p.mn, false)
for _, s in ipairs(p.s) do variadic('SADD', s[1], s[2], 1) end
for _, s in ipairs(p.sr) do variadic('SREM', s[1], s[2], 1) end
-- sorted sets: {key, {score, member, score, member, ...}}
for _, z in ipairs(p.z) do variadic('ZADD', z[1], z[2], 2) end
for _, z in ipairs(p.zr) do variadic('ZREM', z[1], z[2], 1) end
for _, z in ipairs(p.zt) do redis.call('ZREMRANGEBYSCORE', z[1], '-inf', '(' .. z[2]) end
-- keep only members within {key, span} of the key's own newest member
for _, z in ipairs(p.zk) do
  local top = redis.call('ZRANGE', z[1], -1, -1, 'WITHSCORES')
  if top[2] then
    redis.call('ZREMRANGEBYSCORE', z[1], '-inf',
                '(' .. string.format('%.17g', tonumber(top[2]) - tonumber(z[2])))
  end
end
for _, t in ipairs(p.t) do
  if t[3] > 0 then redis.call('SET', t[1], t[2], 'EX', t[3]) else redis.call('SET', t[1], t[2]) end
end
for _, d in ipairs(p.d) do redis.call('DEL', d) end
for _, e in ipairs(p.e) do redis.call('EXPIRE', e[1], e[2]) end
for _, c in ipairs(p.c) do redis.call('HINCRBY', KEYS[3], c[1], 1) end
for _, x in ipairs(p.x) do
  redis.call('XADD', x[1], 'MAXLEN', '~', x[2], '*', 'd', x[3])
end
return {1}
