-- wrk script of scripts/bench-ratio. Arguments after `--`: a bearer token or
-- `-`, then a file of ids or `-`. With ids, each request goes to the URL's path
-- followed by one of them at random. Prints the percentiles and the non-2xx
-- count in a form the script reads back.
local ids = {}
local token
init = function(args)
  if args[1] and args[1] ~= "-" then token = args[1] end
  if args[2] and args[2] ~= "-" then
    for line in io.lines(args[2]) do ids[#ids + 1] = line end
  end
end
request = function()
  local headers = {}
  if token then headers["Authorization"] = "Bearer " .. token end
  local path = wrk.path
  if #ids > 0 then path = path .. ids[math.random(#ids)] end
  return wrk.format("GET", path, headers)
end
done = function(summary, latency, requests)
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("p%d %.2f\n", p, latency:percentile(p) / 1000))
  end
  local e = summary.errors
  io.write(string.format("bad %d\n", e.status + e.connect + e.read + e.write + e.timeout))
end
