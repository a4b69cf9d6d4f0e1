-- wrk: GET /v1/projects?q=…&category=…&skills=…&facets=category,skills,status, a
-- full-text search narrowed by a category and a skill, sorted by relevance, with
-- the counts of three facets: the searches in the file given after `--`, one
-- per line, at random (scripts/bench-projects writes them and counts what each
-- finds).
local paths = {}
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
done = function(summary, latency, requests)
  for _, p in ipairs({50, 90, 95, 99}) do
    io.write(string.format("p%d %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  local e = summary.errors
  io.write(string.format("non-2xx: %d, errors: connect %d, read %d, write %d, timeout %d\n",
    e.status, e.connect, e.read, e.write, e.timeout))
end
