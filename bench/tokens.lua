-- wrk script for bench/run.py: many distinct tokens, or a POST.
--   BENCH_TOKENS      file with one token per line
--   BENCH_TOKEN_MODE  cycle: each thread goes round its own slice of the file
--                          (every token seen again: the cache rows);
--                     once:  each token of the thread's slice once, then the
--                          thread stops sending once as many answers came
--                          back (the warm-up pass; wrk itself still waits
--                          out -d; the slice's last token is sent again
--                          while the last answers are on their way);
--                     new:   never the same token twice while the slice
--                          lasts (the cold rows: size the file to the run)
--   BENCH_OFFSET      tokens of each slice already used by earlier runs
--                     (new mode: a round never resends a token)
--   BENCH_THREADS     wrk's -t
--   BENCH_BODY        a POST body (form), sent instead of tokens
local file = os.getenv("BENCH_TOKENS")
local mode = os.getenv("BENCH_TOKEN_MODE") or "cycle"
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local body = os.getenv("BENCH_BODY")
local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")

local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local tokens, first, last, i = {}, 1, 0, 0
function init(args)
  if body then
    wrk.method = "POST"
    wrk.body = body
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
    return
  end
  for line in io.lines(file) do
    tokens[#tokens + 1] = line
  end
  local per = math.floor(#tokens / threads)
  first = id * per + 1
  last = first + per - 1
  i = first - 1
  if mode == "new" and per > 0 then
    i = first - 1 + (math.floor(offset / threads) % per)
  end
end

local answered = 0
function response()
  answered = answered + 1
  if mode == "once" and answered >= last - first + 1 then
    wrk.thread:stop()
  end
end

function request()
  if body then
    return wrk.format()
  end
  if mode == "once" then
    if i < last then i = i + 1 end
  else
    i = i + 1
    if i > last then i = first end
  end
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
