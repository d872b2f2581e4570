"""Import, once, the modules that the plugin's inner pytester runs use.

pytester's in-process runs drop from ``sys.modules`` what they imported, but a package attribute
keeps pointing at the dropped module (``from . import floor`` then returns it), so a later run
would mix two generations of ``Policy`` and ``isinstance`` would fail between them. Importing them
here keeps one generation for the whole session.
"""

from __future__ import annotations

import pytest_cleanroom.engine
import pytest_cleanroom.pytest_plugin.sandbox
import pytest_cleanroom.repeat.replay
import pytest_cleanroom.scenarios.files
import pytest_cleanroom.scenarios.items
import pytest_cleanroom.scenarios.runner
import pytest_cleanroom.snapshot.extension
import pytest_cleanroom.snapshot.views  # noqa: F401
