-- wrk: GET /v1/users?q=…&skills=… with words and skills drawn at random.
local words = {"ada", "alan", "grace", "lin", "mar", "rob", "sam", "kim", "joh", "eva"}
local skills = {"rust", "go", "sql", "react", "design", "ml", "devops", "ios"}
request = function()
  local q = words[math.random(#words)]
  local s = skills[math.random(#skills)]
  return wrk.format("GET", "/v1/users?q=" .. q .. "&skills=" .. s)
end
