#!/usr/bin/env bash
# Style check, first thing in scripts/test.sh: luacheck over the Lua
# (settings in .luacheckrc: Lua 5.4, 120 columns) and the same column
# limit over the C sources.  Zero warnings, or it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v luacheck >/dev/null || { echo "lint: luacheck not found (apt-get install lua-check)" >&2; exit 2; }
status=0
luacheck --quiet --formatter plain lua/ tests/ || status=1
# C: the same 120 columns (luacheck sees only Lua)
long=$(find core tests bench -name '*.[ch]' -print0 | xargs -0 awk 'length($0) > 120 { print FILENAME ":" FNR ": line is too long (" length($0) " > 120)" }')
if [ -n "$long" ]; then echo "$long"; status=1; fi
if [ $status -eq 0 ]; then echo "lint: clean"; fi
exit $status
