#!/usr/bin/env bash
# The VM lab by hand (docs/vm-lab.md): scripts/vm.sh up|down|ssh|image.
exec bash "$(dirname "$0")/../tests/vm/lib/vm.sh" "$@"
