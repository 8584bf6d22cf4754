#!/usr/bin/env bash
# Run the SCIM 2.0 conformance checks of `scim2 test` (PyPI scim2-cli, which
# drives scim2-tester) against a running server, and fail unless every check
# reports SUCCESS.
#
# Usage: .ci/scim2-interop.sh URL TOKEN
#   URL    base URL of the SCIM service, e.g. http://127.0.0.1:8080/scim/v2
#   TOKEN  bearer token, sent as "Authorization: Bearer TOKEN" (an empty
#          TOKEN sends no Authorization header)
#
# `scim2` must be on PATH (see .ci/install-python-tools.sh, which pins the
# versions this script was written against: scim2-cli 0.6.0 / scim2-tester
# 0.5.2).
#
# Environment (optional):
#   SCIM2_INTEROP_TIMEOUT          seconds before the run is killed (default
#                                  900; 0 disables). Needs `timeout`.
#   SCIM2_INTEROP_VERBOSE=1        pass -v to `scim2 test` (prints the data
#                                  of every result; very long).
#   SCIM2_INTEROP_REQUIRED_CHECKS  space-separated check names that must each
#                                  appear at least once (default: the list
#                                  below; empty string disables the check).
#
# Pass/fail rule. scim2-tester statuses are SUCCESS, COMPLIANT, ACCEPTABLE,
# DEVIATION, ERROR, CRITICAL and SKIPPED; only SUCCESS counts as a pass (the
# CLI itself exits 1 on any other status). The run fails if:
#   - scim2 exits non-zero (any non-SUCCESS result, discovery failure,
#     network error, usage error) or is killed by the timeout;
#   - the output lacks the "Performing a SCIM compliance check" banner;
#   - zero result lines are printed;
#   - any result line has a status other than SUCCESS (unknown ones included);
#   - a required check never ran.
# Exit status: 0 pass, 1 fail, 2 usage / environment error.
set -euo pipefail

prog="scim2-interop"
die() { echo "$prog: $*" >&2; exit 2; }

if [[ $# -ne 2 ]]; then
    echo "usage: $0 URL TOKEN" >&2
    exit 2
fi
url="$1"
token="$2"
[[ -n "$url" ]] || die "empty URL"
command -v scim2 >/dev/null 2>&1 || die "'scim2' not found on PATH (run .ci/install-python-tools.sh and add its venv bin/ to PATH)"

# Checks scim2-tester 0.5.2 runs when the server is usable (per resource type
# for the object_*/search_*/check_* ones).
default_required="service_provider_config_endpoint service_provider_config_endpoint_methods
query_all_resource_types query_resource_type_by_id resource_types_schema_validation
access_invalid_resource_type resource_types_endpoint_methods
query_all_schemas access_schema_by_id access_invalid_schema schemas_endpoint_methods
random_url
object_creation object_query object_query_without_id
object_query_with_attributes object_list_with_attributes search_with_attributes
object_replacement object_deletion
check_add_attribute check_remove_attribute check_replace_attribute"
required="${SCIM2_INTEROP_REQUIRED_CHECKS-$default_required}"

# Test what the server publishes: environment variables read by scim2-cli
# could otherwise replace its discovery documents or its URL.
unset SCIM_CLI_URL SCIM_CLI_SCHEMAS SCIM_CLI_RESOURCE_TYPES SCIM_CLI_SERVICE_PROVIDER_CONFIG SCIM_CLI_HEADERS

cmd=(scim2 --url "$url")
if [[ -n "$token" ]]; then
    if [[ "$token" == *";"* || "$token" == *$'\n'* || "$token" == *$'\r'* ]]; then
        [[ "$token" != *$'\n'* && "$token" != *$'\r'* ]] || die "TOKEN contains a line break"
        # SCIM_CLI_HEADERS splits on ';', so such a token goes on the command line.
        cmd+=(--header "Authorization: Bearer $token")
    else
        # Through the environment, so the token does not show in `ps`.
        export SCIM_CLI_HEADERS="Authorization: Bearer $token"
    fi
fi
cmd+=(test --check-status-code --check-content-type)
[[ "${SCIM2_INTEROP_VERBOSE:-0}" == "1" ]] && cmd+=(-v)

timeout_secs="${SCIM2_INTEROP_TIMEOUT:-900}"
[[ "$timeout_secs" =~ ^[0-9]+$ ]] || die "SCIM2_INTEROP_TIMEOUT must be a number of seconds"
if [[ "$timeout_secs" != "0" ]]; then
    if command -v timeout >/dev/null 2>&1; then
        cmd=(timeout --kill-after=10 "$timeout_secs" "${cmd[@]}")
    else
        echo "$prog: 'timeout' not found, running without a time limit" >&2
    fi
fi

out="$(mktemp -t scim2-interop.XXXXXX)"
trap 'rm -f "$out"' EXIT

# Log the versions in use (read with the interpreter of the scim2 script).
versions="$(
    interp="$(head -n 1 "$(command -v scim2)" | sed -n 's/^#!//p')"
    [[ -n "$interp" ]] && $interp -c 'import importlib.metadata as m
print(" ".join(f"{p}=={m.version(p)}" for p in ("scim2-cli", "scim2-tester", "scim2-client", "scim2-models")))' 2>/dev/null
)" || versions="unknown versions"
echo "$prog: $versions" >&2
echo "$prog: running: scim2 --url $url test" >&2
set +e
NO_COLOR=1 "${cmd[@]}" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e

# Result lines are "STATUS check_name", each optionally followed by indented
# reason lines (a reason may span several lines). Colours are stripped in
# case the output was forced to be styled.
plain="$(sed -E $'s/\x1b\\[[0-9;]*[A-Za-z]//g' "$out")"
result_re='^[A-Z][A-Z_]+ [A-Za-z_][A-Za-z0-9_]*$'
results="$(grep -E "$result_re" <<<"$plain" || true)"
total=0
[[ -z "$results" ]] || total=$(wc -l <<<"$results")
successes=$(grep -c '^SUCCESS ' <<<"$results" || true)

failures=()
if [[ $rc -eq 124 || $rc -eq 137 ]] && [[ "${cmd[0]}" == timeout ]]; then
    failures+=("scim2 exited with status $rc (killed after the ${timeout_secs}s timeout?)")
elif [[ $rc -ne 0 ]]; then
    failures+=("scim2 exited with status $rc")
fi
grep -q '^Performing a SCIM compliance check on ' <<<"$plain" ||
    failures+=("no 'Performing a SCIM compliance check' banner (discovery or CLI failure?)")
[[ $total -gt 0 ]] || failures+=("no check result was reported")
[[ $successes -eq $total ]] || failures+=("$((total - successes)) of $total results are not SUCCESS")
missing=()
for check in $required; do
    grep -qE "^[A-Z][A-Z_]+ ${check}\$" <<<"$results" || missing+=("$check")
done
[[ ${#missing[@]} -eq 0 ]] || failures+=("required checks did not run: ${missing[*]}")

echo
echo "$prog: summary for $url"
if [[ $total -gt 0 ]]; then
    awk '{print $1}' <<<"$results" | sort | uniq -c | sed "s/^/$prog:   /"
fi
if [[ ${#failures[@]} -eq 0 ]]; then
    echo "$prog: PASS ($total results, all SUCCESS)"
    exit 0
fi
if [[ $successes -ne $total ]]; then
    echo "$prog: results that are not SUCCESS (with their reasons):"
    # Print each non-SUCCESS result line and the reason lines that follow it.
    awk -v re="$result_re" '
        $0 ~ re { show = ($1 != "SUCCESS") }
        show { print "    " $0 }
    ' <<<"$plain"
fi
for f in "${failures[@]}"; do
    echo "$prog: FAIL: $f"
done
exit 1
