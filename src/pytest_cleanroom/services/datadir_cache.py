"""Initialised data directories, made once per server version and cached on the machine.

``initdb`` (PostgreSQL) and ``mariadb-install-db`` (MariaDB) take seconds; their result is kept in
``<cache>/<kind>/<key>`` and copied for each run, so a later run starts in well under a second.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ServiceStartError
from .registry import Owner
from .settings import ServiceSettings
from .spawn import Account, ServerDir, clean_env


def ensure_cached_datadir(
    kind: str,
    key: str,
    initialise: Callable[[Path], Sequence[str]],
    *,
    valid: Callable[[Path], bool],
    account: Account,
    settings: ServiceSettings,
    run_id: str,
    owner: Owner,
    deadline: float,
) -> Path:
    """``<cache>/<kind>/<key>/data``, made by running ``initialise(data_dir)`` (a command, run as
    ``account``) if no valid entry exists; ``valid(data_dir)`` checks an entry beyond its marker."""
    from filelock import FileLock, Timeout

    root = settings.cache_dir / kind
    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    if _complete(entry, valid):
        return entry / "data"
    try:
        lock = FileLock(str(entry) + ".lock", timeout=max(0.1, deadline - time.monotonic()))
        lock.acquire()
    except Timeout:
        raise ServiceStartError(
            f"another run holds {entry}.lock and has been initialising the cached data directory "
            f"{entry} for longer than the start timeout: raise cleanroom_services_start_timeout, "
            f"or, if no other pytest run is going on, delete {entry}.lock"
        ) from None
    try:
        if not _complete(entry, valid):
            _build(entry, initialise, account, settings, run_id, owner, deadline)
        return entry / "data"
    finally:
        lock.release()


def _complete(entry: Path, valid: Callable[[Path], bool]) -> bool:
    try:
        return (entry / "complete").exists() and valid(entry / "data")
    except OSError:
        return False


def _build(
    entry: Path,
    initialise: Callable[[Path], Sequence[str]],
    account: Account,
    settings: ServiceSettings,
    run_id: str,
    owner: Owner,
    deadline: float,
) -> None:
    # The initialiser runs as the server's account, which may not be able to enter our cache
    # directory (e.g. /root/.cache): initialise inside the runtime directory, then move it.
    work = ServerDir.create(
        service=f"init-{entry.parent.name}",
        runtime_dir=settings.runtime_dir,
        run_id=run_id,
        owner=owner,
        pidfile="",
        stop_signal=signal.SIGTERM,
    )
    try:
        account.chown(work.path)
        data = work.path / "data"
        argv = list(initialise(data))
        _run(argv, work, account, deadline, settings.start_timeout)
        staging = entry.parent / f".{entry.name}.{secrets.token_hex(4)}"
        staging.mkdir()
        shutil.move(str(data), str(staging / "data"))
        (staging / "complete").write_text(" ".join(argv) + "\n")
        if entry.exists():
            shutil.rmtree(entry)  # an incomplete or outdated entry
        os.rename(staging, entry)
    finally:
        work.discard()


def _run(
    argv: list[str], work: ServerDir, account: Account, deadline: float, timeout: float
) -> None:
    log = work.path / "init.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work.path,
            env=clean_env({"LC_ALL": "C", "LANG": "C"}),
            start_new_session=True,
            user=account.uid,
            group=account.gid,
            extra_groups=[] if account.uid is not None else None,
        )
        work.started(proc.pid)
        try:
            code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise ServiceStartError(
                f"{argv[0]} did not finish before the start timeout ({timeout:g} s; raise "
                "cleanroom_services_start_timeout if the machine is slow); its output:\n"
                f"{log.read_text()[-2000:]}"
            ) from None
    if code != 0:
        raise ServiceStartError(f"{argv[0]} failed with status {code}:\n{log.read_text()[-3000:]}")


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a data directory keeping modes and owners (GNU cp clones blocks where it can)."""
    if sys.platform.startswith("linux") and shutil.which("cp"):
        done = subprocess.run(
            ["cp", "-a", "--reflink=auto", str(src), str(dst)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return
        shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)


def chown_tree(path: Path, account: Account) -> None:
    """Give ``path`` and everything in it to ``account`` (nothing to do for the current user)."""
    if account.uid is None or path.stat().st_uid == account.uid:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), account.uid, account.gid or -1)
    os.chown(path, account.uid, account.gid or -1)
