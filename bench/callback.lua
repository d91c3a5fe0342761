-- A MondiaPay redirect with a fresh code on every request (a purchase each).
local counter = 0
local run = tostring(os.time())
request = function()
  counter = counter + 1
  local path = "/oauth/callback?ref=BENCH-" .. counter .. "&code=Abench" .. run .. "t" .. tostring(id or 0) .. "n" .. counter .. "&status=200&message=OK"
  return wrk.format("GET", path)
end
setup = function(thread)
  thread:set("id", math.random(1, 1000000000))
end
