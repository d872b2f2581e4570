#!/usr/bin/env bash
# The project's test command. On a fresh Debian machine it installs everything the tests need
# (Debian packages, the virtualenv, Docker's engine, a Podman service and the locally built
# images, the test VM's image), then runs the static checks and every test: the suite with
# pytest-xdist, then the platforms this machine cannot show, in the test VM (tests/integration/vm:
# cgroup v2 as root, as a user with systemd delegation, without user namespaces; one boot each).
# Idempotent: a second run skips what is already there.
# Extra arguments go to pytest instead, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*" >&2; }

step "system packages and virtualenv"
scripts/setup.sh --docker --vm

step "Docker engine"
scripts/docker-engine.sh start
eval "$(scripts/docker-engine.sh env)"
export DOCKER_HOST

step "Podman service (the podman backend)"
scripts/podman-engine.sh start

step "container images (built locally, cached)"
scripts/build-images.sh
scripts/podman-engine.sh images

# The reaper image cannot be pulled here; the plugin labels and sweeps its own containers.
export TESTCONTAINERS_RYUK_DISABLED=true

step "test VM image (Debian 12, cgroup v2, systemd; built once, cached)"
scripts/test-vm.sh --prepare

step "static checks"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy --strict src

if (($#)); then
  step "tests"
  exec .venv/bin/python -m pytest -n 2 -p no:cacheprovider "$@"
fi
step "tests"
status=0
.venv/bin/python -m pytest -n 2 -p no:cacheprovider --ignore=tests/integration/vm || status=$?
# One VM at a time: each boot uses both cores (software emulation) and prints its parts' times.
step "tests in the VM"
.venv/bin/python -m pytest -p no:cacheprovider tests/integration/vm || status=$?
exit "$status"
