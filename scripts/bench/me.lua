-- wrk: GET /v1/me with the bearer token given as the first argument.
init = function(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end
