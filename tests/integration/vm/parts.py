"""What CI runs inside the test VM, one boot per user: each part is a pytest run of its own, run one
after the other in that boot (``python -m tests.integration.vm.parts BOOT``), each followed by a
line with its exit status and duration that tests/integration/vm reads."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

#: How each part's result line begins (the JSON of :class:`Outcome` follows).
MARK = "[vm-part] "


@dataclasses.dataclass(frozen=True)
class Part:
    """One pytest run in the VM: its name and pytest's arguments."""

    name: str
    args: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a part ended: pytest's exit status, its wall time and its output."""

    name: str
    status: int
    seconds: float
    output: str = ""


# The security suite on the local backends only: Docker and Podman do not run in the VM (its
# limit checks scale their CPU budget by what a reference command costs in the emulated guest).
# Left out: the check of a filesystem without idmapped mounts, which needs fuse-overlayfs (the
# image has none; CI runs it on the host).
LOCAL = (
    "(bwrap or unshare)"
    " and not test_a_filesystem_without_idmapped_mounts_refuses_locked_with_the_fix"
)
SECURITY = Part("security", ("-n", "2", "tests/security", "-k", LOCAL))
# As the user, also without the checks that need a root engine (planting root-only files in
# system directories or /root; a root engine's commands run as nobody).
SECURITY_AS_USER = Part(
    "security",
    ("-n", "2", "tests/security", "-k",
     f"{LOCAL} and not test_allow_list and not test_unprivileged_user"
     " and not test_reading_a_file_under_root_fails"),
)  # fmt: skip
EXAMPLES = Part("examples", ("tests/vm/test_examples.py",))
# Both set-up steps of the unshare backend: _nsinit.c compiled by the VM's gcc, and the Python one.
NATIVE = "tests/integration/engine/test_unshare_setup_step.py"
CGROUP2 = "tests/vm/test_cgroup2_platforms.py"

BOOTS: dict[str, tuple[Part, ...]] = {
    "root": (
        Part("platforms", (CGROUP2, "tests/vm/test_container.py", NATIVE)),
        EXAMPLES,
        SECURITY,
    ),
    # Warm sandboxes are root's, so the set-up step comparison runs as root only (the user's
    # security suite runs the compiled step all the same).
    "user": (
        Part(
            "platforms",
            ("tests/vm/test_no_user_manager.py", CGROUP2, "tests/vm/test_delegation.py"),
        ),
        EXAMPLES,
        SECURITY_AS_USER,
    ),
    # User namespaces off: the README's main job must stop at once and say why.
    "no-userns": (Part("refused", ("examples", "--cleanroom-policy=locked", "-p", "no:xdist")),),
}


def run(part: Part) -> Outcome:
    """Run ``part`` with this interpreter's pytest, its output streamed as it comes."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *part.args]
    print(f"[vm-part-start] {part.name}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    status = subprocess.run(argv, check=False).returncode
    outcome = Outcome(part.name, status, round(time.monotonic() - started, 1))
    print(MARK + json.dumps(dataclasses.asdict(outcome)), flush=True)
    return outcome


def parse(output: str) -> dict[str, Outcome]:
    """The outcomes in ``output`` of a boot, each with the output its part printed."""
    outcomes: dict[str, Outcome] = {}
    before = ""
    for line in output.splitlines(keepends=True):
        if line.startswith(MARK):
            fields = json.loads(line[len(MARK) :])
            outcomes[fields["name"]] = Outcome(**{**fields, "output": before})
            before = ""
        else:
            before += line
    return outcomes


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in BOOTS:
        print(f"usage: python -m tests.integration.vm.parts {{{','.join(BOOTS)}}}", file=sys.stderr)
        return 2
    for part in BOOTS[argv[0]]:
        run(part)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
