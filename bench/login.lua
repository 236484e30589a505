-- wrk script for bench/run.sh: every request is POST /wx/login with a login code never
-- sent before (the fake WeChat's codes work once, as WeChat's do).
--
--   wrk -t1 -c256 -d10s -s bench/login.lua http://127.0.0.1:PORT -- TAG APPID [STOP_AFTER [SECRET]]
--
-- TAG must differ between wrk runs against the same fake ([A-Za-z0-9_-]); STOP_AFTER > 0
-- stops each thread after that many 200 answers. With SECRET, the requests go straight to
-- the fake WeChat's GET /sns/jscode2session instead (to measure the fake alone).

local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("id", threads)
end

function init(args)
   tag = (args[1] or "r") .. "t" .. tostring(id or 1) .. "n"
   appid = args[2] or ""
   stop_after = tonumber(args[3] or "0") or 0
   secret = args[4]
   sent, ok = 0, 0
end

function request()
   sent = sent + 1
   local n = tostring(sent)
   -- 27 characters when the number fits, so the openid ("o" .. code) is as long as a real one
   local code = tag .. string.rep("0", 27 - #tag - #n) .. n
   if secret then
      return wrk.format("GET", "/sns/jscode2session?appid=" .. appid .. "&secret=" .. secret
         .. "&js_code=" .. code .. "&grant_type=authorization_code")
   end
   local body = '{"code":"' .. code .. '","appid":"' .. appid .. '"}'
   return wrk.format("POST", "/wx/login", { ["Content-Type"] = "application/json" }, body)
end

function response(status)
   if status == 200 then
      ok = ok + 1
   end
   if stop_after > 0 and ok >= stop_after then
      wrk.thread:stop()
   end
end
