-- POST /v1/purchases: a new purchase each request (no Idempotency-Key), the client token cached.
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"subscription_type_id":12345,"ref":"BENCH-P' .. tostring(id or 0) .. "-" .. counter .. '"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. api_key}, body)
end
setup = function(thread)
  thread:set("id", math.random(1, 1000000000))
  thread:set("api_key", os.getenv("BENCH_API_KEY"))
end
