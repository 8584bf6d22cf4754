#!/usr/bin/env bash
# Smoke test for the oidc-provider test peer (server.mjs): drives full
# authorization-code logins with curl (no browser), checks tokens, userinfo,
# key rotation and process lifecycle. Needs node, curl and python3, and
# `npm ci` done in this directory (see .ci/install-node-peers.sh).
# Exits non-zero on the first failure; always stops the servers it started.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/oidc-peer-smoke.XXXXXX")
REDIRECT_URI=http://127.0.0.1:9/cb # never contacted: we stop at its Location
PIDS=()
FAILED=0

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ $FAILED == 1 ]]; then
    local f
    for f in "$WORK"/*.err; do
      [[ -e $f ]] || continue
      echo "---- server stderr: $(basename "$f") ----" >&2
      tail -n 40 "$f" >&2
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  FAILED=1
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "ok - $*"; }

[[ -d $HERE/node_modules/oidc-provider ]] \
  || fail "node_modules missing: run npm ci in $HERE (or .ci/install-node-peers.sh)"

# python3 one-liners: json field access, url handling, randomness.
py() { python3 -c "$@"; }
jget() { # jget FILE PYEXPR  (the parsed JSON is `j`)
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(v if isinstance(v,str) else json.dumps(v))' "$1" "$2"
}
rand() { py 'import secrets; print(secrets.token_urlsafe(32))'; }

# Node helper: verify an ID token's RS256 signature against a JWKS and print
# its header and payload as JSON. Uses only node:crypto.
cat >"$WORK/verify.mjs" <<'EOF'
import { createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
const [token, jwksFile] = process.argv.slice(2);
const [h, p, s] = token.split('.');
const header = JSON.parse(Buffer.from(h, 'base64url'));
const payload = JSON.parse(Buffer.from(p, 'base64url'));
const jwks = JSON.parse(readFileSync(jwksFile, 'utf8'));
const jwk = jwks.keys.find((k) => k.kid === header.kid);
if (!jwk) { console.error(`kid ${header.kid} not in JWKS`); process.exit(3); }
if (header.alg !== 'RS256') { console.error(`unexpected alg ${header.alg}`); process.exit(4); }
const good = verify('sha256', Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
if (!good) { console.error('bad signature'); process.exit(5); }
console.log(JSON.stringify({ header, payload }));
EOF

# start_server NAME ARGS... : sets ${NAME}_PID, ${NAME}_FD (its stdin), ${NAME}_ISSUER
start_server() {
  local name=$1; shift
  mkfifo "$WORK/$name.in"
  node "$HERE/server.mjs" "$@" <"$WORK/$name.in" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  local fd
  exec {fd}>"$WORK/$name.in" # hold its stdin open
  printf -v "${name}_PID" %s "$pid"
  printf -v "${name}_FD" %s "$fd"
  local i
  for ((i = 0; i < 200; i++)); do
    if [[ -s $WORK/$name.out ]] && [[ $(wc -l <"$WORK/$name.out") -ge 1 ]]; then break; fi
    kill -0 "$pid" 2>/dev/null || fail "server $name died at startup"
    sleep 0.1
  done
  [[ $(wc -l <"$WORK/$name.out") -eq 1 ]] || fail "server $name did not print its ready line"
  local issuer port
  issuer=$(jget "$WORK/$name.out" 'j["issuer"]')
  port=$(jget "$WORK/$name.out" 'j["port"]')
  [[ $issuer == "http://127.0.0.1:$port" && $port -gt 0 ]] || fail "bad ready line: $(cat "$WORK/$name.out")"
  printf -v "${name}_ISSUER" %s "$issuer"
  echo "started $name: $(cat "$WORK/$name.out")"
}

wait_exit() { # wait_exit PID WHAT
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  fail "server did not exit after $2"
}

CURL=(curl -sS --max-time 10)

post_json() { # post_json URL JSON -> body on stdout, fails on non-2xx
  "${CURL[@]}" -f -H 'content-type: application/json' -d "$2" "$1" || fail "POST $1 failed"
}

# authorize ISSUER JAR CLIENT_ID [extra query params as k=v...]
# Follows redirects with the cookie jar until the provider redirects to
# REDIRECT_URI; sets FINAL_URL, STATE, NONCE, VERIFIER. Sets AUTH_STATUS and
# AUTH_BODY if it stops anywhere else.
authorize() {
  local issuer=$1 jar=$2 client_id=$3; shift 3
  # One python3 call: fresh state, nonce, PKCE verifier + S256 challenge, and
  # the authorization URL (a parameter given as k=__omit__ is left out).
  local url
  {
    read -r STATE
    read -r NONCE
    read -r VERIFIER
    read -r url
  } < <(py 'import sys, secrets, hashlib, base64, urllib.parse as u
state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
q = {"state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"}
q.update(kv.split("=", 1) for kv in sys.argv[2:])
q = {k: v for k, v in q.items() if v != "__omit__"}
print(state, nonce, verifier, sys.argv[1] + "?" + u.urlencode(q), sep="\n")' "$AUTH_ENDPOINT" response_type=code \
    client_id="$client_id" redirect_uri="$REDIRECT_URI" scope="openid email profile groups" "$@")
  FINAL_URL=
  AUTH_STATUS=
  AUTH_BODY=
  local hop status loc
  for ((hop = 0; hop < 15; hop++)); do
    read -r status loc < <("${CURL[@]}" -o "$WORK/body" -b "$jar" -c "$jar" -w '%{http_code} %{redirect_url}\n' "$url")
    if [[ $loc == "$REDIRECT_URI"* ]]; then
      FINAL_URL=$loc
      return 0
    fi
    if [[ $status != 30[1237] || -z $loc ]]; then
      AUTH_STATUS=$status
      AUTH_BODY=$(cat "$WORK/body")
      return 1
    fi
    url=$loc
  done
  fail "too many redirects"
}

qparam() { py 'import sys,urllib.parse as u; print(u.parse_qs(u.urlsplit(sys.argv[1]).query).get(sys.argv[2], [""])[0])' "$1" "$2"; }

# exchange CODE AUTHMETHOD CLIENT_ID SECRET [VERIFIER] -> token response in $WORK/token.json, HTTP status in TOKEN_STATUS
exchange() {
  local code=$1 method=$2 id=$3 secret=$4 verifier=${5-}
  local args=(-o "$WORK/token.json" -w '%{http_code}' --data-urlencode grant_type=authorization_code
    --data-urlencode "code=$code" --data-urlencode "redirect_uri=$REDIRECT_URI")
  [[ -n $verifier ]] && args+=(--data-urlencode "code_verifier=$verifier")
  case $method in
    basic) args+=(-u "$id:$secret") ;;
    post) args+=(--data-urlencode "client_id=$id" --data-urlencode "client_secret=$secret") ;;
    *) fail "unknown auth method $method" ;;
  esac
  TOKEN_STATUS=$("${CURL[@]}" "${args[@]}" "$TOKEN_ENDPOINT")
}

# login ISSUER JAR METHOD CLIENT_ID SECRET [extra auth params] : full flow,
# sets ID_TOKEN, ACCESS_TOKEN, and $WORK/idtoken.json, $WORK/userinfo.json
login() {
  local issuer=$1 jar=$2 method=$3 id=$4 secret=$5; shift 5
  authorize "$issuer" "$jar" "$id" "$@" || fail "authorization stopped with HTTP $AUTH_STATUS: $AUTH_BODY"
  local code rstate riss
  read -r code rstate riss < <(py 'import sys,urllib.parse as u
q = u.parse_qs(u.urlsplit(sys.argv[1]).query)
print(*(q.get(k, ["-"])[0] for k in ("code", "state", "iss")))' "$FINAL_URL")
  [[ $rstate == "$STATE" ]] || fail "state mismatch in $FINAL_URL"
  [[ $riss == "$issuer" ]] || fail "iss mismatch in $FINAL_URL"
  [[ $code != - ]] || fail "no code in $FINAL_URL"
  exchange "$code" "$method" "$id" "$secret" "$VERIFIER"
  [[ $TOKEN_STATUS == 200 ]] || fail "token endpoint ($method) answered $TOKEN_STATUS: $(cat "$WORK/token.json")"
  ID_TOKEN=$(jget "$WORK/token.json" 'j["id_token"]')
  ACCESS_TOKEN=$(jget "$WORK/token.json" 'j["access_token"]')
  "${CURL[@]}" -f "$JWKS_URI" >"$WORK/jwks.json" || fail "JWKS fetch failed"
  node "$WORK/verify.mjs" "$ID_TOKEN" "$WORK/jwks.json" >"$WORK/idtoken.json" || fail "ID token does not verify against the JWKS"
  [[ $(jget "$WORK/idtoken.json" '" ".join(str(j["payload"].get(k)) for k in ("nonce", "iss", "aud"))') \
    == "$NONCE $issuer $id" ]] || fail "ID token nonce/iss/aud mismatch: $(cat "$WORK/idtoken.json")"
  "${CURL[@]}" -f -H "authorization: Bearer $ACCESS_TOKEN" "$USERINFO_ENDPOINT" >"$WORK/userinfo.json" \
    || fail "userinfo call failed"
}

discover() { # discover ISSUER : sets endpoint variables
  "${CURL[@]}" -f "$1/.well-known/openid-configuration" >"$WORK/discovery.json" || fail "discovery failed"
  [[ $(jget "$WORK/discovery.json" 'j["issuer"]') == "$1" ]] || fail "discovery issuer mismatch"
  read -r AUTH_ENDPOINT TOKEN_ENDPOINT USERINFO_ENDPOINT JWKS_URI < <(jget "$WORK/discovery.json" \
    '" ".join(j[k] for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"))')
}

ALICE='{"sub":"alice","claims":{"email":"alice@example.test","email_verified":true,"given_name":"Alice","family_name":"Liddell","name":"Alice Liddell","groups":["admins","staff"]}}'
BOB='{"sub":"bob","claims":{"email":"bob@example.test","email_verified":false,"name":"Bob","groups":[]}}'

# ------------------------------------------------------------ server A
start_server A --client "rp:rp-secret:$REDIRECT_URI" --client "rp2:rp2-secret:$REDIRECT_URI,http://127.0.0.1:9/other"
"${CURL[@]}" -f "$A_ISSUER/__test/health" >/dev/null || fail "health check"
ok "GET /__test/health"

discover "$A_ISSUER"
echo "discovery: $(jget "$WORK/discovery.json" '{k: j.get(k) for k in ["issuer","authorization_endpoint","token_endpoint","userinfo_endpoint","jwks_uri","id_token_signing_alg_values_supported","code_challenge_methods_supported","token_endpoint_auth_methods_supported","scopes_supported"]}')"
[[ $(jget "$WORK/discovery.json" '"S256" in j["code_challenge_methods_supported"]') == true ]] || fail "S256 not advertised"
ok "discovery document"

post_json "$A_ISSUER/__test/accounts" "$ALICE" >/dev/null
post_json "$A_ISSUER/__test/accounts" "$BOB" >/dev/null
ok "accounts registered"

# No login_hint, no next-login: the scripted interaction must refuse clearly.
if authorize "$A_ISSUER" "$WORK/jar0" rp; then fail "login succeeded with no account chosen"; fi
[[ $AUTH_STATUS == 400 && $AUTH_BODY == *no_test_account* ]] || fail "expected 400 no_test_account, got $AUTH_STATUS: $AUTH_BODY"
ok "no account chosen -> 400: $(py 'import json,sys; print(json.loads(sys.argv[1])["error_description"])' "$AUTH_BODY")"

# Login 1: next-login, client_secret_basic, PKCE S256.
post_json "$A_ISSUER/__test/next-login" '{"sub":"alice"}' >/dev/null
login "$A_ISSUER" "$WORK/jar1" basic rp rp-secret
[[ $(jget "$WORK/idtoken.json" 'j["payload"]["sub"]') == alice ]] || fail "expected sub alice"
[[ $(jget "$WORK/idtoken.json" '"email" in j["payload"]') == false ]] || fail "email in ID token without --claims-in-id-token"
[[ $(jget "$WORK/userinfo.json" 'j["email"]') == alice@example.test ]] || fail "userinfo email: $(cat "$WORK/userinfo.json")"
[[ $(jget "$WORK/userinfo.json" 'j["groups"]') == '["admins", "staff"]' ]] || fail "userinfo groups: $(cat "$WORK/userinfo.json")"
OLD_ID_TOKEN=$ID_TOKEN
OLD_KID=$(jget "$WORK/idtoken.json" 'j["header"]["kid"]')
echo "id_token payload: $(jget "$WORK/idtoken.json" 'j["payload"]')"
echo "userinfo: $(cat "$WORK/userinfo.json")"
ok "login alice via next-login, client_secret_basic, PKCE S256, nonce matches, userinfo has email+groups"

# Login 2: same cookie jar, login_hint=bob, client_secret_post, second client.
login "$A_ISSUER" "$WORK/jar1" post rp2 rp2-secret login_hint=bob
[[ $(jget "$WORK/idtoken.json" 'j["payload"]["sub"]') == bob ]] || fail "login_hint ignored (session reused?)"
[[ $(jget "$WORK/userinfo.json" 'j["email"]') == bob@example.test ]] || fail "userinfo email for bob"
ok "login bob via login_hint on a reused cookie jar, client_secret_post"

# Login 3: same jar, no hint -> back to next-login account.
login "$A_ISSUER" "$WORK/jar1" basic rp rp-secret
[[ $(jget "$WORK/idtoken.json" 'j["payload"]["sub"]') == alice ]] || fail "expected alice again"
PRE_ROTATION_AT=$ACCESS_TOKEN
ok "login alice again on the same jar (scripted account wins over the session)"

# Wrong PKCE verifier and wrong client secret are rejected.
authorize "$A_ISSUER" "$WORK/jar2" rp || fail "authorize: $AUTH_STATUS $AUTH_BODY"
exchange "$(qparam "$FINAL_URL" code)" basic rp rp-secret "$(rand)"
[[ $TOKEN_STATUS == 400 && $(jget "$WORK/token.json" 'j["error"]') == invalid_grant ]] \
  || fail "wrong code_verifier: $TOKEN_STATUS $(cat "$WORK/token.json")"
ok "wrong code_verifier -> invalid_grant"
authorize "$A_ISSUER" "$WORK/jar2" rp || fail "authorize: $AUTH_STATUS $AUTH_BODY"
exchange "$(qparam "$FINAL_URL" code)" basic rp wrong-secret "$VERIFIER"
[[ $TOKEN_STATUS == 401 && $(jget "$WORK/token.json" 'j["error"]') == invalid_client ]] \
  || fail "wrong secret: $TOKEN_STATUS $(cat "$WORK/token.json")"
ok "wrong client secret -> 401 invalid_client"

# PKCE is optional for confidential clients.
authorize "$A_ISSUER" "$WORK/jar2" rp code_challenge=__omit__ code_challenge_method=__omit__ \
  || fail "authorize without PKCE: $AUTH_STATUS $AUTH_BODY"
CODE=$(qparam "$FINAL_URL" code)
exchange "$CODE" post rp rp-secret
[[ $TOKEN_STATUS == 200 ]] || fail "code without PKCE: $TOKEN_STATUS $(cat "$WORK/token.json")"
ok "confidential client without PKCE accepted"
exchange "$CODE" post rp rp-secret
[[ $TOKEN_STATUS == 400 && $(jget "$WORK/token.json" 'j["error"]') == invalid_grant ]] \
  || fail "code replay: $TOKEN_STATUS $(cat "$WORK/token.json")"
ok "authorization code replay -> invalid_grant"

# Key rotation.
ROT=$(post_json "$A_ISSUER/__test/rotate-keys" '{}')
"${CURL[@]}" -f "$JWKS_URI" >"$WORK/jwks.json" || fail "JWKS fetch"
NEW_KIDS=$(jget "$WORK/jwks.json" '[k["kid"] for k in j["keys"]]')
NEW_KID=$(jget "$WORK/jwks.json" 'j["keys"][0]["kid"]')
[[ $(jget "$WORK/jwks.json" 'len(j["keys"])') == 1 && $NEW_KID != "$OLD_KID" ]] \
  || fail "JWKS after rotation: $NEW_KIDS (old $OLD_KID)"
if node "$WORK/verify.mjs" "$OLD_ID_TOKEN" "$WORK/jwks.json" >/dev/null 2>&1; then
  fail "old ID token still verifies against the new JWKS"
fi
"${CURL[@]}" -f -H "authorization: Bearer $PRE_ROTATION_AT" "$USERINFO_ENDPOINT" >/dev/null \
  || fail "access token issued before the rotation no longer works"
login "$A_ISSUER" "$WORK/jar3" basic rp rp-secret login_hint=alice
[[ $(jget "$WORK/idtoken.json" 'j["header"]["kid"]') == "$NEW_KID" ]] || fail "new ID token not signed with the new key"
ok "rotate-keys: $ROT; JWKS kid $OLD_KID -> $NEW_KIDS; new ID tokens use it; accounts, clients and earlier access tokens kept"

# Closing stdin stops the server.
exec {A_FD}>&-
wait_exit "$A_PID" "stdin closed"
ok "server exits when its stdin closes"

# ------------------------------------------------------------ server B
start_server B --claims-in-id-token --client "rp:rp-secret:$REDIRECT_URI"
discover "$B_ISSUER"
post_json "$B_ISSUER/__test/accounts" "$ALICE" >/dev/null
login "$B_ISSUER" "$WORK/jarB" post rp rp-secret login_hint=alice
[[ $(jget "$WORK/idtoken.json" 'j["payload"].get("email")') == alice@example.test ]] \
  || fail "--claims-in-id-token: no email in ID token: $(cat "$WORK/idtoken.json")"
[[ $(jget "$WORK/idtoken.json" 'j["payload"].get("groups")') == '["admins", "staff"]' ]] \
  || fail "--claims-in-id-token: no groups in ID token"
[[ $(jget "$WORK/userinfo.json" 'j["email"]') == alice@example.test ]] || fail "userinfo email (B)"
echo "id_token payload (--claims-in-id-token): $(jget "$WORK/idtoken.json" 'j["payload"]')"
ok "--claims-in-id-token puts profile/email/groups claims in the ID token"

kill -TERM "$B_PID"
wait_exit "$B_PID" SIGTERM
ok "server exits on SIGTERM"

echo "smoke: all checks passed"
