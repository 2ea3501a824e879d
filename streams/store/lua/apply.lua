-- The stream worker's write: one batch of the feature store, atomically (see
-- streams/store/sink.py, apply_batch, and docs/feature-store.md, "Exactly once").
--
-- ARGV[1]: the TTL of the dedup sets; ARGV[2]: the JSON of {"d": dedup groups [key, ids],
-- "o": store operations (their codes: streams/store/plan.py, Op), "w": windows to report
-- [topic, partition, open-window key, window-SKU key prefix, largest closable start]}.
-- If any event id is in its dedup set, nothing changes and the known ids are returned;
-- otherwise the ids are recorded, every operation applied, and the JSON of the windows due
-- is returned: [topic, partition, start, SKUs changed in it] each.
local ttl = tonumber(ARGV[1])
local plan = cjson.decode(ARGV[2])
local CHUNK = 1000
local function chunks(list, step, fn)
  for lo = 1, #list, step do
    local part = {}
    for j = lo, math.min(lo + step - 1, #list) do part[#part + 1] = list[j] end
    fn(part)
  end
end
local dups = {}
for _, group in ipairs(plan.d) do
  local key = group[1]
  chunks(group[2], CHUNK, function(ids)
    local flags = redis.call('SMISMEMBER', key, unpack(ids))
    for j = 1, #ids do
      if flags[j] == 1 then dups[#dups + 1] = ids[j] end
    end
  end)
end
if #dups > 0 then return dups end
for _, group in ipairs(plan.d) do
  local key = group[1]
  chunks(group[2], CHUNK, function(ids) redis.call('SADD', key, unpack(ids)) end)
  redis.call('EXPIRE', key, ttl)
end
for _, op in ipairs(plan.o) do
  local code, key = op[1], op[2]
  if code == 'H' then
    local f = op[4]
    for j = 1, #f, 2 do redis.call('HINCRBY', key, f[j], f[j + 1]) end
    if op[3] > 0 then redis.call('EXPIRE', key, op[3], 'NX') end
  elseif code == 'M' then
    local sums, highs, names = op[4], op[5], {}
    for j = 1, #sums, 2 do names[#names + 1] = sums[j] end
    for j = 1, #highs, 2 do names[#names + 1] = highs[j] end
    local cur = redis.call('HMGET', key, unpack(names))
    local out, k = {}, 0
    for j = 1, #sums, 2 do
      k = k + 1
      out[#out + 1] = sums[j]
      out[#out + 1] = string.format('%d', (tonumber(cur[k]) or 0) + sums[j + 1])
    end
    for j = 1, #highs, 2 do
      k = k + 1
      local old = tonumber(cur[k])
      if (not old) or old < highs[j + 1] then
        out[#out + 1] = highs[j]
        out[#out + 1] = string.format('%d', highs[j + 1])
      end
    end
    if #out > 0 then redis.call('HSET', key, unpack(out)) end
    if op[3] > 0 then redis.call('EXPIRE', key, op[3], 'NX') end
  elseif code == 'X' then
    local f = op[3]
    for j = 1, #f, 2 do
      if redis.call('HSETNX', key, f[j], f[j + 1]) == 0 then
        if tonumber(redis.call('HGET', key, f[j])) < tonumber(f[j + 1]) then
          redis.call('HSET', key, f[j], f[j + 1])
        end
      end
    end
  elseif code == 'V' then
    local cur = redis.call('HGET', key, op[3])
    if (not cur) or cur < op[4] then
      redis.call('HSET', key, op[3], op[4], unpack(op[5]))
    end
  elseif code == 'S' then
    chunks(op[4], CHUNK, function(m) redis.call('SADD', key, unpack(m)) end)
    if op[3] > 0 then redis.call('EXPIRE', key, op[3]) end
  elseif code == 'Z' then
    chunks(op[4], CHUNK, function(m) redis.call('ZADD', key, unpack(m)) end)
    if op[3] > 0 then redis.call('EXPIRE', key, op[3]) end
  elseif code == 'B' then
    local f, args = op[4], {}
    for j = 1, #f, 2 do
      args[#args + 1] = 'INCRBY'
      args[#args + 1] = 'i64'
      args[#args + 1] = '#' .. f[j]
      args[#args + 1] = f[j + 1]
    end
    redis.call('BITFIELD', key, unpack(args))
    if op[3] > 0 then redis.call('EXPIRE', key, op[3], 'NX') end
  elseif code == 'T' then
    redis.call('EXPIRE', key, op[3])
  elseif code == 'F' then
    redis.call('HSETNX', key, op[3], op[4])
  elseif code == 'N' then
    local t = redis.call('TIME')
    redis.call('HSET', key, op[3], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  else
    return redis.error_reply('unknown feature-store op ' .. tostring(code))
  end
end
local due = {}
for _, w in ipairs(plan.w) do
  for _, start in ipairs(redis.call('ZRANGEBYSCORE', w[3], '-inf', w[5])) do
    due[#due + 1] = {w[1], w[2], tonumber(start), redis.call('SMEMBERS', w[4] .. start)}
  end
end
return cjson.encode(due)
