#!/usr/bin/env bash
# The main job: the example suite, sandboxed under the strictest policy, on the embedded default
# (bubblewrap namespaces, no Docker needed). Installs what it needs on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest examples --cleanroom-policy=locked -p no:cacheprovider "$@"
