-- wrk script: POST /api/v1/leads with a unique lead per request.
-- Env: TOKEN (API token), ACK_DIR (optional: each thread appends the ids acknowledged by a
-- 201 to ACK_DIR/acked-<thread>.txt, line-buffered, so a kill -9 of the server loses nothing
-- the client saw acknowledged), RUN (a run id that keeps emails unique across runs), LEAD_TZ
-- (the leads' zone: run.sh picks one where it is daytime, so their first email goes at once).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  token = os.getenv("TOKEN")
  run = os.getenv("RUN") or tostring(os.time())
  tz = os.getenv("LEAD_TZ") or "America/New_York"
  local dir = os.getenv("ACK_DIR")
  if dir and dir ~= "" then
    ack = io.open(dir .. "/acked-" .. tid .. ".txt", "a")
    ack:setvbuf("line")
  end
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"first_name":"Load%d","last_name":"T%d","email":"load-%s-%d-%d@example.com","source":"wrk","timezone":"%s"}',
    counter, tid, run, tid, counter, tz)
  return wrk.format("POST", "/api/v1/leads", nil, body)
end

function response(status, headers, body)
  if status == 201 and ack then
    local id = string.match(body, '"id":(%d+)')
    if id then ack:write(id, "\n") end
  end
end
