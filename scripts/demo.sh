#!/usr/bin/env bash
# make demo: an echo upstream on 127.0.0.1:18080 and Envoy with envoy.yaml and
# the plugin on 127.0.0.1:10000. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=.venv/bin/python
read -r -a ENVOY_CMD <<< "${ENVOY:-.venv/bin/envoy}"

$PYTHON e2e/echo_server.py 18080 &
echo_pid=$!
IDP_REDIRECT_URIS="http://127.0.0.1:10000/oauth2/callback http://localhost:10000/oauth2/callback" \
  IDP_LOG=0 IDP_ID_TOKEN_ALL_CLAIMS=1 node e2e/idp/server.js --port 9000 &
idp_pid=$!
trap 'kill $echo_pid $idp_pid 2>/dev/null || true' EXIT

cat <<'TXT'

edge-auth demo: Envoy on http://127.0.0.1:10000 (admin http://127.0.0.1:9901)

  # 1. get a token (client-credentials grant, HTTP Basic client auth) for consumer1
  TOKEN=$(curl -s -u demo-client-consumer1-4f0c6b2e9a7d:demo-secret-consumer1-Xq7Lr2Vn9Bw4Tz6Kp1Hs \
      -d grant_type=client_credentials http://127.0.0.1:10000/oauth2/token \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

  # 2. call the protected route: the echo upstream shows x-mse-consumer: consumer1
  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:10000/orders/42

  # 3. without a token: 401; open route: 200
  curl -si http://127.0.0.1:10000/orders/42 | head -5
  curl -s http://127.0.0.1:10000/public/hello

  # 4. single sign-on: open in a browser, sign in at the local IdP with any
  #    user name and password (e.g. alice / alice), accept the consent:
  #      http://127.0.0.1:10000/app
  #    the echoed page shows x-mse-consumer and x-user from the ID token;
  #    sign out: http://127.0.0.1:10000/oauth2/sign_out

TXT
"${ENVOY_CMD[@]}" -c envoy.yaml --concurrency 1 --disable-hot-restart -l info
