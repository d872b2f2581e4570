"""Per test: what its cleanroom was, what it ran, and (when attesting) the workspace before."""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..result import RunResult
    from .attester import WrittenEnvelope
    from .digests import Snapshot
    from .sandbox_coverage import SandboxCoverage
    from .session import AttestSession

# JUnit XML property names (``--junitxml``), set on tests that used a cleanroom.
PROP_BACKEND = "cleanroom_backend"
PROP_POLICY = "cleanroom_policy"
PROP_SEED = "cleanroom_seed"
PROP_ATTESTATION = "cleanroom_attestation_digest"
PROP_LIMITS = "cleanroom_limits_enforcement"


@dataclass
class CleanroomWatch:
    """One test's cleanroom as the hooks saw it."""

    workspace: Path | None
    created_at: float
    policy_name: str | None = None
    policy_digest: str | None = None
    backend: str | None = None
    seed: int | None = None
    before: Snapshot | None = None
    results: list[RunResult] = field(default_factory=list)
    envelope: WrittenEnvelope | None = None
    coverage: SandboxCoverage | None = None
    watching: bool = False  # snapshot_inputs was called

    @classmethod
    def of_cleanroom(cls, cleanroom: Any) -> CleanroomWatch:
        """Read what the cleanroom exposes; anything it does not is taken from its results."""
        workspace = getattr(cleanroom, "workspace", None)
        root = getattr(workspace, "root", workspace)
        policy = getattr(cleanroom, "policy", None)
        digest = getattr(policy, "digest", None)
        seed = getattr(cleanroom, "seed", None)
        backend = getattr(cleanroom, "backend_name", None) or getattr(cleanroom, "backend", None)
        return cls(
            workspace=Path(root) if root is not None else None,
            created_at=time.time(),
            policy_name=getattr(policy, "name", None),
            policy_digest=digest() if callable(digest) else None,
            backend=backend if isinstance(backend, str) else getattr(backend, "name", None),
            seed=seed if isinstance(seed, int) else None,
        )

    def snapshot_inputs(self, cleanroom: Any) -> None:
        """Record the workspace's file digests just before the cleanroom's first command: what
        is there then is the commands' input, whoever wrote it.

        One walk that hashes every file, taken when it is needed, after which the workspace is
        watched (inotify) so that the comparison at teardown reads only what changed; should
        ``run`` not be wrappable, it is taken now, at creation. A test whose cleanroom never
        runs a command gets its snapshot at teardown (:meth:`attest`): inputs, no outputs.
        """
        from .digests import take_snapshot

        assert self.workspace is not None
        workspace = self.workspace
        original = cleanroom.run
        lock = threading.Lock()

        @functools.wraps(original)
        def run(*args: Any, **kwargs: Any) -> Any:
            with lock:
                if self.before is None:
                    self.before = take_snapshot(workspace, watch=True)
            return original(*args, **kwargs)

        try:
            cleanroom.run = run
        except AttributeError:
            self.before = take_snapshot(workspace)
        self.watching = True

    def properties(self) -> list[tuple[str, str]]:
        """JUnit properties: what the test's commands actually ran with."""
        first = self.results[0] if self.results else None
        backend = first.backend if first else self.backend
        policy = first.policy_name if first else self.policy_name
        seed = first.seed if first else self.seed
        props = [
            (PROP_BACKEND, str(backend) if backend is not None else ""),
            (PROP_POLICY, str(policy) if policy is not None else ""),
            (PROP_SEED, str(seed) if seed is not None else ""),
        ]
        enforced = sorted({r.limits_enforcement for r in self.results if r.limits_enforcement})
        if enforced:  # every way the test's commands had their limits enforced
            props.append((PROP_LIMITS, ",".join(enforced)))
        if self.envelope is not None:
            props.append((PROP_ATTESTATION, self.envelope.digest))
        return props

    def attest(self, nodeid: str, session: AttestSession) -> WrittenEnvelope:
        """Compare the workspace with the snapshot, then sign and write the test's envelope."""
        from .digests import compare
        from .statement import AttestedTest

        if self.before is None and self.watching and self.workspace is not None:
            from .digests import take_snapshot

            self.before = take_snapshot(self.workspace)  # no command ran: nothing was produced
        changes = None
        if self.before is not None:
            try:
                changes = compare(self.before)
            finally:
                self.before.close()
        now = time.time()
        started = min([self.created_at, *(r.started_at for r in self.results if r.started_at)])
        finished = max([now, *(r.started_at + r.duration for r in self.results if r.started_at)])
        self.envelope = session.attester.attest_test(
            AttestedTest(
                nodeid=nodeid,
                results=self.results,
                workspace=str(self.workspace) if self.workspace is not None else None,
                changes=changes,
                started_at=started,
                finished_at=finished,
                policy_name=self.policy_name,
                policy_digest=self.policy_digest,
                backend=self.backend,
                seed=self.seed,
            )
        )
        return self.envelope
