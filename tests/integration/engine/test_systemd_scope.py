"""The D-Bus call that asks the user's systemd for a delegated scope, on a real bus.

systemd's user manager runs only in the VM (tests/integration/vm covers the whole path there);
here a private dbus-daemon checks the wire format: dbus-monitor, an independent decoder, shows the
StartTransientUnit call exactly as systemd would receive it, and the daemon's own refusal (no
systemd on this bus) comes back as the error the engine reports.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom.cgroups._systemd_scope import DBusError, start_scope
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    daemon = require_binary("dbus-daemon", "apt-get install dbus-daemon")
    socket = tmp_path / "bus"
    (tmp_path / "bus.conf").write_text(CONFIG.format(socket=socket))
    process = subprocess.Popen([daemon, "--nofork", f"--config-file={tmp_path / 'bus.conf'}"])
    try:
        for _ in range(500):
            if socket.exists():
                break
            time.sleep(0.01)
        yield f"unix:path={socket}"
    finally:
        process.terminate()
        process.wait(10)


def test_start_transient_unit_is_sent_as_systemd_reads_it(bus: str, tmp_path: Path) -> None:
    monitor_bin = require_binary("dbus-monitor", "apt-get install dbus-bin")
    log = tmp_path / "monitor.log"
    with log.open("w") as out:
        monitor = subprocess.Popen([monitor_bin, "--address", bus], stdout=out)
    try:
        for _ in range(500):  # the monitor is ready once it has said so
            if "NameLost" in log.read_text():
                break
            time.sleep(0.01)
        with pytest.raises(DBusError) as refused:
            start_scope(bus, "pytest-cleanroom-test.scope", 4242)
        time.sleep(0.2)
    finally:
        monitor.terminate()
        monitor.wait(10)
    # No systemd on this bus: the daemon's answer is the error, named.
    assert "org.freedesktop.DBus.Error.ServiceUnknown" in str(refused.value)
    assert "org.freedesktop.systemd1" in str(refused.value)
    seen = log.read_text()
    call = seen[seen.index("member=StartTransientUnit") :]
    for part in ("path=/org/freedesktop/systemd1", "interface=org.freedesktop.systemd1.Manager"):
        assert part in seen
    expected = ['string "pytest-cleanroom-test.scope"', 'string "fail"', 'string "PIDs"',
                "uint32 4242", 'string "Delegate"', "boolean true"]  # fmt: skip
    positions = [call.index(part) for part in expected]
    assert positions == sorted(positions)


def test_a_socket_nobody_listens_on_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DBusError, match="No such file"):
        start_scope(f"unix:path={tmp_path / 'absent'}", "x.scope", 1)
