"""What a server binary's ``--version`` prints, remembered across runs.

The report header names the PostgreSQL and Redis versions a run would use; asking the binaries
costs tens of milliseconds at every pytest start. As virtualenv does for interpreters, the answer
is kept in the user's cache directory, keyed by the binary's real path and identity (device,
inode, size, modification and change times), so that an upgraded or replaced binary is asked
again. A cache that cannot be read or written is ignored: the binary is simply asked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from ..safe_write import write_output

CACHE_FILE = "binary-versions.json"


def _identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _load(cache: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store(cache: Path, data: dict[str, dict[str, object]]) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_output(cache, json.dumps(data))
    except OSError:
        pass


def version_output(program: Path, ask: Callable[[Path], str], cache_dir: Path) -> str:
    """``ask(program)``, from the cache in ``cache_dir`` when the binary has not changed."""
    try:
        real = Path(os.path.realpath(program))
        identity = _identity(real)
    except OSError:
        return ask(program)
    cache = cache_dir / CACHE_FILE
    data = _load(cache)
    entry = data.get(str(real))
    if isinstance(entry, dict) and entry.get("identity") == identity:
        output = entry.get("output")
        if isinstance(output, str):
            return output
    output = ask(program)
    if output:  # a binary that could not run is asked again next time
        data[str(real)] = {"identity": identity, "output": output}
        _store(cache, data)
    return output
