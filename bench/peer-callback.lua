-- The bench-peer's callback with a fresh code on every request, as callback.lua sends it. The peer
-- answers 200 with its page; every other answer is counted and reported as a failure (wrk itself
-- counts only those above 399).
local counter = 0
local run = tostring(os.time())
local threads = {}
not_ok = 0
setup = function(thread)
  thread:set("id", math.random(1, 1000000000))
  table.insert(threads, thread)
end
request = function()
  counter = counter + 1
  local path = "/oauth/callback?ref=BENCH-" .. counter .. "&code=Abench" .. run .. "t" .. tostring(id or 0) .. "n" .. counter .. "&status=200&message=OK"
  return wrk.format("GET", path)
end
response = function(status)
  if status ~= 200 then
    not_ok = not_ok + 1
  end
end
done = function()
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("not_ok")
  end
  io.write("Answers other than 200: " .. total .. "\n")
end
