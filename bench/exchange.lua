-- POST /v1/exchange with a fresh code on every request.
local counter = 0
local run = tostring(os.time())
request = function()
  counter = counter + 1
  local body = '{"code":"Aexch' .. run .. "t" .. tostring(id or 0) .. "n" .. counter .. '"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. api_key}, body)
end
setup = function(thread)
  thread:set("id", math.random(1, 1000000000))
  thread:set("api_key", os.getenv("BENCH_API_KEY"))
end
