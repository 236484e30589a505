-- wrk script for bench/relay.sh: every request is a subscribe message sent through the
-- open-API relay on wxgate's admin listener; answers that are not errcode 0 are counted.
--
--   wrk -t1 -c32 -d10s -s bench/relay.lua http://127.0.0.1:ADMIN_PORT

wrk.method = "POST"
wrk.path = "/wechat/api/cgi-bin/message/subscribe/send"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"touser":"obench","template_id":"TEMPLATE","data":{"thing1":{"value":"shipped"}}}'

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   failed = 0
end

function response(status, headers, body)
   if status ~= 200 or not string.find(body, '"errcode":0', 1, true) then
      failed = failed + 1
   end
end

function done(summary, latency, requests)
   local n = 0
   for _, t in ipairs(threads) do
      n = n + t:get("failed")
   end
   io.write(string.format("relay_failed %d\n", n))
end
