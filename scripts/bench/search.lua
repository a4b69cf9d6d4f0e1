-- wrk: GET /v1/users?q=…&skills=… with words and skills drawn at random.
local words = {"ada", "alan", "grace", "lin", "mar", "rob", "sam", "kim", "joh", "eva"}
local skills = {"rust", "go", "sql", "react", "design", "ml", "devops", "ios"}
request = function()
  local q = words[math.random(#words)]
  local s = skills[math.random(#skills)]
  return wrk.format("GET", "/v1/users?q=" .. q .. "&skills=" .. s)
end
done = function(summary, latency, requests)
  for _, p in ipairs({50, 95, 99}) do
    io.write(string.format("p%d %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("non-2xx or errors: %d\n",
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
