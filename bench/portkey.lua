-- wrk script: the request of post.lua (the same fixed chat completion body), plus the headers
-- Portkey's gateway routes by: provider "openai" at the custom host PORTKEY_CUSTOM_HOST (set by
-- bench/run.sh to the mock's http://127.0.0.1:PORT/v1) and the key it forwards as a bearer token.
wrk.headers["x-portkey-provider"] = "openai"
wrk.headers["x-portkey-custom-host"] = os.getenv("PORTKEY_CUSTOM_HOST") or error("PORTKEY_CUSTOM_HOST is not set")
wrk.headers["Authorization"] = "Bearer bench"
dofile("bench/post.lua")
