-- wrk: GET /v1/projects?q=…&category=…&skills=…&facets=category,skills,status, a
-- full-text search narrowed by a category and a skill, sorted by relevance, with
-- the counts of three facets. Each part is drawn at random: a word (a prefix
-- match), one of the five largest categories and one of the eight most frequent
-- skills. The word is common (10 to 50 % of projects) unless the argument after
-- `--` is `rare` (under 2 %). scripts/bench-projects counts what each finds.
local common = {"app", "website", "api", "design", "data", "dashboard", "mobile", "payments"}
local rare = {"sommelier", "hydroponics", "beekeeping", "luthier", "cartography", "origami",
              "bonsai", "kintsugi"}
local categories = {"web-development", "mobile-development", "design", "data-science", "devops"}
local skills = {"javascript", "react", "python", "typescript", "node", "sql", "figma", "aws"}
local words = common
init = function(args)
  if args[1] == "rare" then words = rare end
end
request = function()
  return wrk.format("GET", "/v1/projects?q=" .. words[math.random(#words)]
    .. "&category=" .. categories[math.random(#categories)]
    .. "&skills=" .. skills[math.random(#skills)]
    .. "&facets=category,skills,status")
end
done = function(summary, latency, requests)
  for _, p in ipairs({50, 90, 95, 99}) do
    io.write(string.format("p%d %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  local e = summary.errors
  io.write(string.format("non-2xx: %d, errors: connect %d, read %d, write %d, timeout %d\n",
    e.status, e.connect, e.read, e.write, e.timeout))
end
