"""What CI runs inside the test VM, one boot per user: each part is a pytest run of its own, run one
after the other in that boot (``python -m tests.integration.vm.parts BOOT``), each followed by a
line with its exit status and duration that tests/integration/vm reads."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

#: How each part's result line begins (the JSON of :class:`Outcome` follows).
MARK = "[vm-part] "


@dataclasses.dataclass(frozen=True)
class Part:
    """One pytest run in the VM: its name, pytest's arguments and variables set for it."""

    name: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


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
     " and not test_reading_a_file_under_root_fails"
     # Warm sandboxes (and sandboxes entered ahead) are root's: the warm cases are left out
     # (tests run cold and warm name their start), the cold ones run as the user's engine; a
     # tmpfs of the test's own needs root to mount.
     " and not warm and not test_shared_mounts"
     " and not test_a_tests_first_command_is_given_only_its_own_workspace"
     " and not test_a_workspace_that_is_gone_fails_as_a_cold_start_does"
     " and not test_each_command_is_confined_by_its_own_policy"
     " and not test_the_next_command_entered_ahead_finds_nothing_left"
     # Only a root engine mounts scratch tmpfs (in its private directory under the scratch
     # root); the tests that need one say so in their names.
     " and not test_a_sandbox_seeing_the_hosts_tmp_cannot_change_the_engines_directory"
     " and not root_engine"),
)  # fmt: skip
EXAMPLES = Part("examples", ("tests/vm/test_examples.py",))
# The services plugin on the process provider (PostgreSQL, Redis and MariaDB started from the
# VM's packages; no Docker in the VM): each test's own database and Redis, under xdist too, and a
# sandbox reaching a server through its socket only when its policy lists it. Each of these tests
# starts servers of its own (initdb alone takes seconds under emulation), so only these run here:
# the rest of tests/plugin/services checks settings, reports and other providers, which do not
# depend on the platform, and runs on the host. A server may take 10 minutes to start: an emulated
# initdb took over the default 60 s on a loaded host.
SERVICES = Part(
    "services",
    ("-n", "2", *(f"tests/plugin/services/{test}" for test in (
        "test_sandbox.py::test_isolated_network_still_reaches_allowed_services_through_their_sockets",
        "test_fixtures.py::test_attributes_and_connections",
        "test_fixtures.py::test_every_test_gets_an_empty_database_and_leftovers_are_dropped",
        "test_fixtures.py::test_under_xdist_one_postgres_serves_every_worker_and_each_has_its_redis[2]",
        "test_mysql.py::test_a_database_per_test_on_one_server_for_the_run[2]",
        "test_mysql.py::test_a_sandbox_reaches_mysql_only_when_the_policy_lists_it",
    ))),
    env=(("CLEANROOM_SERVICES_START_TIMEOUT", "600"),),
)  # fmt: skip
# Both set-up steps of the unshare backend: _nsinit.c compiled by the VM's gcc, and the Python one.
NATIVE = "tests/integration/engine/test_unshare_setup_step.py"
CGROUP2 = "tests/vm/test_cgroup2_platforms.py"

BOOTS: dict[str, tuple[Part, ...]] = {
    "root": (
        Part("platforms", (CGROUP2, "tests/vm/test_container.py", NATIVE)),
        EXAMPLES,
        SECURITY,
        SERVICES,
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
        SERVICES,
    ),
    # User namespaces off: the README's main job must stop at once and say why.
    "no-userns": (Part("refused", ("examples", "--cleanroom-policy=locked", "-p", "no:xdist")),),
}


def run(part: Part) -> Outcome:
    """Run ``part`` with this interpreter's pytest, its output streamed as it comes."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *part.args]
    print(f"[vm-part-start] {part.name}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    status = subprocess.run(argv, env={**os.environ, **dict(part.env)}, check=False).returncode
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
