-- Forget published windows: ARGV is the number of windows, then per window its open-window
-- set, its SKU set, its start and the count and names of the SKUs it was published with.
--
-- Only those SKUs leave the window's set. A late event applied between the report and this
-- drop added its SKU to the set: the window then stays open and is reported again, with that
-- SKU, by its partition's next batch (deleting the whole set lost that SKU's republication).
local a = 1
for _ = 1, tonumber(ARGV[1]) do
  local zkey, skey, start, n = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
  local first, last = a + 5, a + 4 + n
  for i = first, last, 1000 do
    redis.call('SREM', skey, unpack(ARGV, i, math.min(i + 999, last)))
  end
  if redis.call('SCARD', skey) == 0 then redis.call('ZREM', zkey, start) end
  a = last
end
return 0
