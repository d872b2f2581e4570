"""What one command costs through the ``docker`` backend, next to its peers.

Side by side in one run, interleaved round-robin so that machine noise hits every row alike
(medians over --repeat runs of ``true``; measured, never asserted):

1. ``true`` natively (``subprocess.run``);
2. ``Cleanroom.run`` under ``locked`` on the ``bwrap`` backend (the local default);
3. ``docker run --rm --network none cleanroom/bookworm:latest true`` (the docker CLI);
4. the floor of a container per command: docker SDK create + start + wait + remove of a container
   without network (as under ``locked``), nothing else;
5. ``Cleanroom.run`` on the ``docker`` backend under ``standard`` and under ``locked`` (mounts,
   limits, attach, labels, cgroup measurement, removal).

The "backend adds" column is the row's median minus the SDK floor's.
Needs the engine (``scripts/docker-engine.sh start``, DOCKER_HOST exported) and the images
(``scripts/build-images.sh``).

Run: ``.venv/bin/python benchmarks/bench_docker.py [--repeat 20] [--json]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends.docker import DEFAULT_IMAGE
from pytest_cleanroom.containers import connect, docker_host
from pytest_cleanroom.errors import CleanroomError


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20, help="runs per row (default 20)")
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()

    try:
        client = connect()
        client.images.get(DEFAULT_IMAGE)
    except Exception as exc:
        print(f"bench_docker: {exc}", file=sys.stderr)
        return 2
    docker_cli = shutil.which("docker")
    host = docker_host()

    def sdk_floor() -> None:
        config = client.api.create_host_config(network_mode="none")
        cid = client.api.create_container(DEFAULT_IMAGE, ["true"], host_config=config)["Id"]
        client.api.start(cid)
        client.api.wait(cid)
        client.api.remove_container(cid, force=True)

    with tempfile.TemporaryDirectory() as tmp:
        rooms: dict[str, Cleanroom] = {}
        try:
            rooms["bwrap-locked"] = Cleanroom(Path(tmp, "b"), policy="locked", backend="bwrap")
        except CleanroomError as exc:
            print(f"bench_docker: no bwrap row ({exc})", file=sys.stderr)
        rooms["docker-standard"] = Cleanroom(Path(tmp, "s"), policy="standard", backend="docker")
        rooms["docker-locked"] = Cleanroom(Path(tmp, "l"), policy="locked", backend="docker")

        rows: dict[str, Callable[[], object]] = {
            "native true": lambda: subprocess.run(["true"], check=True),
        }
        if "bwrap-locked" in rooms:
            rows["Cleanroom.run bwrap, locked"] = lambda: rooms["bwrap-locked"].run(["true"])
        if docker_cli:
            rows["docker run --rm (CLI)"] = lambda: subprocess.run(
                [docker_cli, "-H", host, "run", "--rm", "--network", "none", DEFAULT_IMAGE, "true"],
                check=True,
            )
        rows["SDK create/start/wait/rm"] = sdk_floor
        rows["Cleanroom.run docker, standard"] = lambda: rooms["docker-standard"].run(["true"])
        rows["Cleanroom.run docker, locked"] = lambda: rooms["docker-locked"].run(["true"])

        for fn in rows.values():  # warm-up: caches, images, first connections
            fn()
        samples: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.repeat):
            for name, fn in rows.items():
                samples[name].append(_timed(fn))
        for room in rooms.values():
            room.close()

    medians = {name: statistics.median(values) for name, values in samples.items()}
    floor = medians["SDK create/start/wait/rm"]
    if args.json:
        print(json.dumps({"repeat": args.repeat, "median_seconds": medians}, indent=2))
        return 0
    print(f"median of {args.repeat} runs of `true`, interleaved (engine {host})")
    print(f"{'row':<34} {'median ms':>10} {'p90 ms':>8} {'backend adds ms':>16}")
    for name, values in samples.items():
        p90 = sorted(values)[max(0, int(len(values) * 0.9) - 1)]
        adds = (
            f"{(medians[name] - floor) * 1000:+.0f}" if name.startswith("Cleanroom.run d") else ""
        )
        print(f"{name:<34} {medians[name] * 1000:>10.1f} {p90 * 1000:>8.1f} {adds:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
