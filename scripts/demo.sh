#!/usr/bin/env bash
# make demo: an echo upstream, the local OpenID provider and Envoy with
# envoy.yaml and the plugin. The instructions are printed once Envoy is
# ready; every process's output goes to a log file under target/demo/
# (Envoy at --log-level warning). Ctrl-C stops all of them.
#
# Ports (defaults as in envoy.yaml): DEMO_PORT=10000 (gateway),
# DEMO_ADMIN_PORT=9901, DEMO_ECHO_PORT=18080, DEMO_IDP_PORT=9000.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=.venv/bin/python
read -r -a ENVOY_CMD <<< "${ENVOY:-.venv/bin/envoy}"
PORT=${DEMO_PORT:-10000}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9901}
ECHO_PORT=${DEMO_ECHO_PORT:-18080}
IDP_PORT=${DEMO_IDP_PORT:-9000}
LOG_DIR=${DEMO_LOG_DIR:-target/demo}
mkdir -p "$LOG_DIR"
ENVOY_LOG=$LOG_DIR/envoy.log
IDP_LOG=$LOG_DIR/idp.log
ECHO_LOG=$LOG_DIR/echo.log
ACCESS_LOG=$LOG_DIR/access.log  # Envoy's stdout: the access log of envoy.yaml
CONFIG=$LOG_DIR/envoy.yaml

# envoy.yaml with the chosen ports (the same file with the defaults).
sed -e "s/port_value: 10000\b/port_value: $PORT/" \
    -e "s/port_value: 9901\b/port_value: $ADMIN_PORT/" \
    -e "s/port_value: 18080\b/port_value: $ECHO_PORT/" \
    -e "s/port_value: 9000\b/port_value: $IDP_PORT/" \
    -e "s#http://127.0.0.1:9000\"#http://127.0.0.1:$IDP_PORT\"#" \
    envoy.yaml > "$CONFIG"

pids=()
stop_all() {
  trap - EXIT INT TERM
  # Children started with & in a script ignore SIGINT, so Ctrl-C alone
  # would leave them running: stop each one by its pid and wait for it.
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'echo; echo "edge-auth demo: stopping"; exit 130' INT TERM

fail() {
  echo "make demo: $1" >&2
  [ -n "${2:-}" ] && { echo "--- last lines of $2:" >&2; tail -n 20 "$2" >&2; }
  exit 1
}

# wait_for NAME URL PID LOG: poll URL until it answers 200 (60 s at most).
wait_for() {
  local name=$1 url=$2 pid=$3 log=$4
  for _ in $(seq 600); do
    kill -0 "$pid" 2>/dev/null || fail "$name exited" "$log"
    if "$PYTHON" - "$url" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200 else 1)
PY
    sleep 0.1
  done
  fail "$name not ready at $url after 60 s" "$log"
}

"$PYTHON" e2e/echo_server.py "$ECHO_PORT" > "$ECHO_LOG" 2>&1 &
pids+=($!)
echo_pid=$!
IDP_REDIRECT_URIS="http://127.0.0.1:$PORT/oauth2/callback http://localhost:$PORT/oauth2/callback" \
  IDP_LOG=0 IDP_ID_TOKEN_ALL_CLAIMS=1 node e2e/idp/server.js --port "$IDP_PORT" > "$IDP_LOG" 2>&1 &
pids+=($!)
idp_pid=$!
wait_for "echo upstream" "http://127.0.0.1:$ECHO_PORT/ready" "$echo_pid" "$ECHO_LOG"
wait_for "identity provider" "http://127.0.0.1:$IDP_PORT/.well-known/openid-configuration" "$idp_pid" "$IDP_LOG"

"${ENVOY_CMD[@]}" -c "$CONFIG" --concurrency 1 --disable-hot-restart \
  --log-level warning --log-path "$ENVOY_LOG" > "$ACCESS_LOG" 2>&1 &
pids+=($!)
envoy_pid=$!
wait_for "Envoy" "http://127.0.0.1:$ADMIN_PORT/ready" "$envoy_pid" "$ENVOY_LOG"

G=http://127.0.0.1:$PORT
cat <<TXT

edge-auth demo: Envoy is ready on $G (admin http://127.0.0.1:$ADMIN_PORT)
  logs: $ENVOY_LOG (warning level; more: curl -X POST 'http://127.0.0.1:$ADMIN_PORT/logging?level=debug'),
        access log $ACCESS_LOG, $IDP_LOG, $ECHO_LOG
  Ctrl-C stops everything.

  # 1. get a token (client-credentials grant, HTTP Basic client auth) for consumer1
  TOKEN=\$(curl -s -u demo-client-consumer1-4f0c6b2e9a7d:demo-secret-consumer1-Xq7Lr2Vn9Bw4Tz6Kp1Hs \\
      -d grant_type=client_credentials $G/oauth2/token \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

  # 2. call the protected route: the echo upstream shows x-mse-consumer: consumer1
  curl -s -H "Authorization: Bearer \$TOKEN" $G/orders/42

  # 3. without a token: 401; open route: 200
  curl -si $G/orders/42 | head -5
  curl -s $G/public/hello

  # 4. single sign-on: open in a browser, sign in at the local IdP with any
  #    user name and password (e.g. alice / alice), accept the consent:
  #      $G/app
  #    the echoed page shows x-mse-consumer and x-user from the ID token;
  #    sign out: $G/oauth2/sign_out

TXT

# Wait until a child exits (then stop the others) or Ctrl-C.
set +e
wait -n "${pids[@]}"
status=$?
echo "make demo: a process exited (status $status); see the logs in $LOG_DIR" >&2
exit "$status"
