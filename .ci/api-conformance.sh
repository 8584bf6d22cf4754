#!/usr/bin/env bash
# Starts a fresh Roster on the given backend with some data in it (an organization, a SCIM
# directory, users, a group, a role mapping, a webhook), then runs schemathesis against its
# admin API, driven by the OpenAPI document the server itself serves.
#
# Checks: all of schemathesis's but `positive_data_acceptance`, which expects every
# schema-valid request to be accepted. Roster refuses some with 400 for reasons a schema
# cannot carry (an issuer URL that must be https, SAML metadata that must parse and hold a
# signing certificate, a slug or a domain that must be free); every other check runs,
# including no 5xx, response bodies and status codes matching the document, and
# schema-violating requests being refused.
#
# Usage: .ci/api-conformance.sh ROSTER_BINARY sqlite|postgres
set -euo pipefail
bin="$(realpath "$1")"
backend="$2"
here="$(cd "$(dirname "$0")" && pwd)"
st="${SCHEMATHESIS:-$here/.venv-api/bin/schemathesis}"
source "$here/fresh-server.sh" "$backend" ci_api
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

"$bin" org create acme --name "Acme" --json >/dev/null
key="$("$bin" admin-key create --name api-conformance --json | json '["key"]')"
dir_json="$("$bin" directory create --org acme --json)"
token="$(echo "$dir_json" | json '["token"]')"
directory="$(echo "$dir_json" | json '["directory_id"]')"
start_roster

scim() { curl -fsS -X "$1" "$base/scim/v2$2" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/scim+json' ${3:+-d "$3"}; }
api() { curl -fsS -X "$1" "$base/api/v1$2" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' ${3:+-d "$3"}; }
user="$(scim POST /Users '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@acme.test","emails":[{"value":"ada@acme.test","primary":true}]}' | json '["id"]')"
scim POST /Users '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@acme.test","active":false}' >/dev/null
group="$(scim POST /Groups "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"displayName\":\"Engineering\",\"members\":[{\"value\":\"$user\"}]}" | json '["id"]')"
mapping="$(api POST /orgs/acme/role-mappings '{"group":"Engineering","role":"developer"}' | json '["id"]')"
webhook="$(api POST /webhooks '{"url":"http://127.0.0.1:9/hook","org":"acme"}' | json '["id"]')"
tok="$(api POST "/orgs/acme/directories/$directory/tokens" '{}' | json '["id"]')"
conn="$(api POST /orgs/acme/connections '{"protocol":"oidc","idp":"okta","issuer":"https://idp.acme.test","client_id":"c","client_secret":"s"}' | json '["id"]')"

cat >"$work/schemathesis.toml" <<TOML
[parameters]
"path.org" = "acme"

[[operations]]
include-path-regex = "^/orgs/\\\\{org\\\\}/users/\\\\{id\\\\}"
parameters = { "path.id" = "$user" }

[[operations]]
include-path-regex = "^/orgs/\\\\{org\\\\}/groups/\\\\{id\\\\}"
parameters = { "path.id" = "$group" }

[[operations]]
include-path-regex = "^/orgs/\\\\{org\\\\}/directories/\\\\{id\\\\}"
parameters = { "path.id" = "$directory", "path.token_id" = "$tok" }

[[operations]]
include-path-regex = "^/orgs/\\\\{org\\\\}/connections/\\\\{id\\\\}"
parameters = { "path.id" = "$conn" }

[[operations]]
include-path-regex = "^/orgs/\\\\{org\\\\}/role-mappings/\\\\{id\\\\}"
parameters = { "path.id" = "$mapping" }

[[operations]]
include-path-regex = "^/webhooks/\\\\{id\\\\}"
parameters = { "path.id" = "$webhook" }
TOML

echo "-- schemathesis on $backend (port $port)"
cd "$work"
if ! "$st" --config-file "$work/schemathesis.toml" run "$base/api/v1/openapi.json" \
    --url "$base/api/v1" -H "Authorization: Bearer $key" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "${API_MAX_EXAMPLES:-40}" --seed 1 --no-color; then
    echo "-- server log (last 50 lines)"; tail -50 "$work/server.log"
    exit 1
fi
if grep -q '"level":"ERROR"\|ERROR' "$work/server.log"; then
    echo "-- the server logged errors:"; grep 'ERROR' "$work/server.log" | head -20
    exit 1
fi
