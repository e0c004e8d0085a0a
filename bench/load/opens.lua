-- wrk script: GET /t/{token}/o.gif cycling through real tracking tokens (one per line in
-- TOKENS, a file written by run.sh from the database), as mail clients opening emails do.
local tokens = {}
local i = 0

function init(args)
  for line in io.lines(os.getenv("TOKENS")) do
    if #line == 32 then table.insert(tokens, line) end
  end
  i = math.random(#tokens)
  wrk.headers["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
end

function request()
  i = i % #tokens + 1
  return wrk.format("GET", "/t/" .. tokens[i] .. "/o.gif")
end
