-- wrk: GET /v1/projects/{id} over the ids in the file given after `--`, at random.
local ids = {}
init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
end
request = function()
  return wrk.format("GET", "/v1/projects/" .. ids[math.random(#ids)])
end
done = function(summary, latency, requests)
  for _, p in ipairs({50, 90, 95, 99}) do
    io.write(string.format("p%d %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  local e = summary.errors
  io.write(string.format("non-2xx: %d, errors: connect %d, read %d, write %d, timeout %d\n",
    e.status, e.connect, e.read, e.write, e.timeout))
end
