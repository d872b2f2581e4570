"""The root ``ggen`` command: mounts the command groups that live beside their logic.

Importing this module imports nothing but ``sys``: click and the groups load only when a command
needs them. ``ggen lifecycle run PHASE`` is first offered to the lifecycle's cache-hit fast path
(:func:`ggen_lifecycle.fast_hit.answer`), which answers a repeated run whose every task is a
cache hit from a manifest the previous run left; ``ggen lifecycle run|pipeline ...`` then to the
lifecycle's click-free parser (:func:`ggen_lifecycle.run_command.main_without_click`), and
``ggen market add ...`` likewise to :func:`ggen_market.add_command.main_without_click`; anything
they do not fully understand goes through click as usual.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported: a cache hit answers before anything else loads
if TYPE_CHECKING:
    import click

# (group name, "module:attribute" of a click.Group). Imported only when the group is invoked.
GROUPS: dict[str, tuple[str, str]] = {
    "market": ("ggen_market.cli:market", "find, install and verify gpacks"),
    "template": ("ggen_market.cli:template", "generate files from an installed gpack's templates"),
    "lifecycle": ("ggen_lifecycle.cli:lifecycle", "run make.toml phases, readiness checks"),
    "attest": ("pytest_cleanroom.attest.cli:attest", "make keys, verify signed attestations"),
    "test": ("ggen_market.test_command:test", "run and list installed test gpacks' scenarios"),
}


_ROOT: list[click.Group] = []


def root_group() -> click.Group:
    """The ``ggen`` click group (built on first use)."""
    if not _ROOT:
        _ROOT.append(_build_root_group())
    return _ROOT[0]


def _build_root_group() -> click.Group:
    import importlib

    import click

    from pytest_cleanroom import __version__

    class LazyGroup(click.Group):
        """Keeps ``ggen --help`` fast: a group's module is imported only when that group runs."""

        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted(GROUPS)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            entry = GROUPS.get(cmd_name)
            if entry is None:
                return None
            module_name, attr = entry[0].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command

        def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            with formatter.section("Commands"):
                formatter.write_dl([(name, GROUPS[name][1]) for name in sorted(GROUPS)])

    @click.group(cls=LazyGroup)
    @click.version_option(__version__, prog_name="ggen")
    def cli() -> None:
        """ggen: gpack marketplace, project lifecycle and attestation tools of pytest-cleanroom."""

    return cli


def console() -> None:
    """The ``ggen`` script and ``python -m ggen_cli``: :func:`main`, then exit with its code.

    A command answered from the lifecycle's cache-hit manifest leaves nothing to clean up (its
    files closed, its locks released, no thread started), so the process ends at once once its
    output is flushed, without the interpreter's finalization (a tenth of such a run's CPU).
    Under coverage, or when the output cannot be flushed, it exits as usual.
    """
    code = main()
    if _ANSWERED_FAST and "coverage" not in sys.modules:
        import os

        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            sys.exit(code)  # the interpreter reports it as usual
        os._exit(code)
    sys.exit(code)


#: Whether this process's command was answered by the lifecycle's cache-hit fast path.
_ANSWERED_FAST = False


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ggen`` and ``python -m ggen_cli``; returns the exit code.

    A group whose optional extra is not installed exits 2 with one line naming the missing
    package and the ``pip install`` that brings it
    (:mod:`pytest_cleanroom.config_errors.extras`), not a traceback.
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        return _run(args)
    except ModuleNotFoundError as exc:
        from pytest_cleanroom.config_errors.extras import missing_extra

        fix = missing_extra(exc)
        if fix is None:
            raise
    group = next((a for a in args if not a.startswith("-")), "")
    prog = f"ggen {group}" if group in GROUPS else "ggen"
    if "--json" in args:  # the shape ggen market's --json errors have
        import json

        print(json.dumps({"ok": False, "error": fix, "kind": "MissingExtra"}), flush=True)
    sys.stderr.write(f"{prog}: error: {fix}\n")
    return 2


def _run(args: list[str]) -> int:
    if args[:1] == ["lifecycle"]:
        from ggen_lifecycle.fast_hit import answer

        code = answer(args[1:])
        if code is not None:
            global _ANSWERED_FAST
            _ANSWERED_FAST = True
            return code
        from ggen_lifecycle.run_command import main_without_click

        code = main_without_click(args[1:])
        if code is not None:
            return code
    elif args[:2] == ["market", "add"]:
        from ggen_market.add_command import main_without_click as add_without_click

        code = add_without_click(args[2:])
        if code is not None:
            return code
    try:
        root_group().main(args=args, prog_name="ggen", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    console()
