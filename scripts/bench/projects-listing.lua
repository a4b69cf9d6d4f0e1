-- wrk: GET /v1/projects?status=open&sort=newest, the public listing's first page.
request = function()
  return wrk.format("GET", "/v1/projects?status=open&sort=newest")
end
done = function(summary, latency, requests)
  for _, p in ipairs({50, 90, 95, 99}) do
    io.write(string.format("p%d %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  local e = summary.errors
  io.write(string.format("non-2xx: %d, errors: connect %d, read %d, write %d, timeout %d\n",
    e.status, e.connect, e.read, e.write, e.timeout))
end
