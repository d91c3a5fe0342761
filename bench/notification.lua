-- MondiaPay's notifications: a new eventUUID on every request (each one stored durably).
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"eventUUID":"bench-' .. tostring(id or 0) .. "-" .. counter .. '","event":"RENEWAL","uuid":"8142","subscriptionId":"1001","status":"ACTIVE"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
setup = function(thread)
  thread:set("id", math.random(1, 1000000000))
end
