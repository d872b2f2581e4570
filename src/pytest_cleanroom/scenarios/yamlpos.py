"""Key lines of a YAML scenario file, and its strict reading (a key given twice is an error).

:class:`YamlKeyLines` answers the same questions as the TOML
:class:`~pytest_cleanroom.config_errors.KeyLines` (which line holds ``("steps", 1, "run")``),
from the node tree PyYAML composes, so that one scenario model reports errors at the right
line whichever syntax the file is written in.
"""

from __future__ import annotations

from typing import Any

from ..config_errors.positions import KeyEntry, KeyLines


class YamlSyntaxError(ValueError):
    """Not valid YAML, or a key given twice; ``line`` is 1-based (``None`` when unknown)."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class YamlKeyLines(KeyLines):
    """The line of every mapping key of one YAML document (sequence items by index)."""

    def __init__(self, node: Any) -> None:
        self._found: list[KeyEntry] = []
        self._walk(node, ())

    def _walk(self, node: Any, path: tuple[str, ...]) -> None:
        import yaml

        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                line = key.start_mark.line + 1
                if name in seen:
                    raise YamlSyntaxError(
                        line, f"key {'.'.join((*path, name))!r} is given twice (first on line"
                        f" {seen[name]})"
                    )  # fmt: skip
                seen[name] = line
                self._found.append(((*path, name), line, key.start_mark.column + 1))
                self._walk(value, (*path, name))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                mark = item.start_mark
                self._found.append(((*path, str(index)), mark.line + 1, mark.column + 1))
                self._walk(item, (*path, str(index)))


def read_yaml(text: str) -> tuple[Any, YamlKeyLines]:
    """The data of a one-document YAML ``text`` and its key lines; :class:`YamlSyntaxError`."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlSyntaxError(mark.line + 1 if mark else None, str(problem)) from None
    return data, YamlKeyLines(node)
