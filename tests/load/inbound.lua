-- wrk script: signed GitHub deliveries into an inbound source, each with its own delivery id.
-- The body and its signature come from the environment (inbound.sh computes them once; the
-- delivery id is a header the signature does not cover, so it can change per request).
local body = os.getenv("BODY")
local signature = os.getenv("SIGNATURE")
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

request = function()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = string.format("bench-%d-%d-%d", thread_id, counter, os.time()),
    ["X-Hub-Signature-256"] = signature,
  }
  return wrk.format("POST", nil, headers, body)
end
