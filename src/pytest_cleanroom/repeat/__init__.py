"""The repeat check: every command of a test runs twice, the second time in a copy of the workspace.

``checker`` compares the two runs, ``replay`` builds the second cleanroom, ``mirror`` keeps the
copy equal to the workspace, ``tree``/``treediff``/``entries`` watch, compare and copy
directory trees, and ``overlay`` gives copy-on-write starting states where the kernel allows
it. It needs nothing from pytest; the scenario sub-plugin attaches a checker to a test's
cleanroom (``--cleanroom-repeat-check``). Importing this package is cheap: it holds no names.
"""
