"""The mechanics the namespace backends (``bwrap``, ``unshare``) run on, below ``local.py``.

``filesystem`` plans the sandbox's view of the host's files, ``limits`` the rlimits,
``process_tree`` starts and supervises a command's launcher, ``prepared`` keeps launchers made
ahead of time, ``launcher_server`` forks them from one compiled process. Only the backends import
these modules; the rest of the engine, and the packages above it, use the names this door
exports.
"""

from __future__ import annotations

from .filesystem import FsOp, is_visible
from .limits import per_process_fields

__all__ = ["FsOp", "is_visible", "per_process_fields"]
