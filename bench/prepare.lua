-- Prepare Purchase at the stand-in, called directly: the upstream's own latency.
request = function()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer C0"}, '{"redirect":"https://shop.example/thanks?purchase=pur_x","subscriptionTypeId":12345}')
end
