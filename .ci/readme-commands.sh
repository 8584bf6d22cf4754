#!/usr/bin/env bash
# Prints the commands of README.md's set-up block, one per line, comments stripped: the
# first ```sh block under the heading with "commands" in it. CI runs exactly these, so the
# README cannot promise what CI does not prove. Fails unless there are exactly two.
set -euo pipefail
readme="$(dirname "$0")/../README.md"
mapfile -t cmds < <(awk '
    /^#+ .*[Cc]ommands/ { under = 1; next }
    under && /^```sh/ { inblock = 1; next }
    inblock && /^```/ { exit }
    inblock {
        sub(/[ \t]+#.*$/, "")
        if ($0 ~ /[^ \t]/) print
    }
' "$readme")
if ((${#cmds[@]} != 2)); then
    echo "readme-commands: README.md's set-up block holds ${#cmds[@]} commands, not two:" >&2
    printf '  %s\n' "${cmds[@]}" >&2
    exit 1
fi
printf '%s\n' "${cmds[@]}"
