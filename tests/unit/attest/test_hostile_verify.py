"""``ggen attest verify`` never blocks or exhausts memory on what it reads: a subject replaced by
/dev/zero or a FIFO, an envelope that is a FIFO or links to /dev/zero, a target that is a device,
and deeply nested JSON are each one failure naming the file."""

from __future__ import annotations

import json
import os
import threading

from pytest_cleanroom.attest.verify import Verification, verify

from .conftest import AttestedRun

NODE_A = "tests/test_a.py::test_build"


def _verify(*args: object, **kwargs: object) -> Verification:
    """verify() in a thread: blocking on a FIFO or reading /dev/zero fails instead of hanging."""
    done: list[Verification] = []
    worker = threading.Thread(target=lambda: done.append(verify(*args, **kwargs)), daemon=True)  # type: ignore[arg-type]
    worker.start()
    worker.join(60)
    assert done, "verify blocked"
    return done[0]


def test_a_subject_replaced_by_dev_zero_or_a_fifo(attested: AttestedRun) -> None:
    output = attested.workspaces[NODE_A] / "build" / "app"
    output.unlink()
    output.symlink_to("/dev/zero")
    log = attested.workspaces[NODE_A] / "build" / "log.txt"
    log.unlink()
    os.mkfifo(log)
    report = _verify(attested.directory, key=attested.public_key)
    failures = report.failures()
    assert any(str(output) in f and "changed" in f for f in failures), failures
    assert any(str(log) in f and "changed" in f for f in failures), failures


def test_an_envelope_that_is_a_fifo_or_links_to_dev_zero(attested: AttestedRun) -> None:
    envelope = attested.directory / attested.envelopes[NODE_A].name
    envelope.unlink()
    os.mkfifo(envelope)
    failures = _verify(attested.directory, key=attested.public_key).failures()
    assert any(str(envelope) in f and "not a regular file (fifo)" in f for f in failures)
    envelope.unlink()
    envelope.symlink_to("/dev/zero")
    failures = _verify(attested.directory, key=attested.public_key).failures()
    assert any(str(envelope) in f and "symbolic link" in f for f in failures), failures


def test_a_target_that_is_a_device_is_named_as_such() -> None:
    report = _verify("/dev/zero")
    assert report.failures() == ["/dev/zero: a character device, not an envelope file or a "
                                 "directory of them"]  # fmt: skip


def test_deeply_nested_json_in_an_envelope(attested: AttestedRun) -> None:
    envelope = attested.directory / attested.envelopes[NODE_A].name
    envelope.write_bytes(b"[" * 200_000 + b"]" * 200_000)
    failures = _verify(attested.directory, key=attested.public_key).failures()
    assert any(str(envelope) in f and "nested too deeply" in f for f in failures), failures
    assert json.dumps(failures)  # plain messages, no exception objects
