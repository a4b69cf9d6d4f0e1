-- wrk: GET /v1/users/{id} over the ids in ids.txt, at random.
local ids = {}
init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
end
request = function()
  return wrk.format("GET", "/v1/users/" .. ids[math.random(#ids)])
end
