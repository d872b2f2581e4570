"""Rendering templates into an output directory, all-or-nothing.

Every template of a run is planned first against an in-memory view of the output directory
(so one template may inject into a file another one creates); only when every template rendered
and every path checked out are files written, all or nothing. Paths are resolved, through
symlinks, and must stay inside ``--out``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_cleanroom.config_errors.suggest import closest, did_you_mean
from pytest_cleanroom.deadline import DeadlineExceededError, time_limit

from ..errors import OutputEscapeError, SandboxViolationError, TemplateError
from ..lockfile import LOCK_NAME, read_lock
from ..manifest import Manifest, load_manifest, matching_files
from .data import TemplateData, gpack_file
from .frontmatter import TEMPLATE_SUFFIX, TemplateSource, parse_template
from .hooks import DEFAULT_HOOK_POLICY, HOOK_KEYS, Hook, HookRun, HookRunner, OnHook
from .sandbox import make_environment


@dataclass(frozen=True)
class GpackTemplate:
    """A template of an installed (or local) gpack."""

    pack_id: str
    version: str
    name: str
    path: Path
    root: Path
    manifest: Manifest

    @property
    def ref(self) -> str:
        return f"{self.pack_id}:{self.name}"


def template_name(root: Path, path: Path) -> str:
    """``templates/cli.py.tmpl`` -> ``cli.py``: the path under ``templates/`` without suffix."""
    rel = path.relative_to(root).as_posix()
    rel = rel.removeprefix("templates/")
    return rel.removesuffix(TEMPLATE_SUFFIX)


def gpack_templates(root: Path, manifest: Manifest | None = None) -> list[GpackTemplate]:
    """Templates of the gpack at ``root``, sorted by name."""
    manifest = manifest or load_manifest(root)
    return [
        GpackTemplate(manifest.id, manifest.version, template_name(root, p), p, root, manifest)
        for p in matching_files(root, manifest.templates.patterns)
    ]


def installed_templates(project: Path) -> list[GpackTemplate]:
    """Templates of every gpack pinned in ``project``'s ggen.lock."""
    lock = read_lock(project / LOCK_NAME)
    if lock is None:
        return []
    found: list[GpackTemplate] = []
    for pid in sorted(lock.packages):
        pkg = lock.packages[pid]
        root = pkg.install_dir(project)
        if not root.is_dir():
            raise TemplateError(
                f"{pid}@{pkg.version} is pinned in ggen.lock but not installed at {root}"
                " (run `ggen market add`)"
            )
        found.extend(gpack_templates(root))
    return found


def find_templates(project: Path, ref: str) -> list[GpackTemplate]:
    """``ID:TEMPLATE`` -> that template; ``ID`` -> every template of the gpack."""
    pack_id, _, name = ref.partition(":")
    available = installed_templates(project)
    of_pack = [t for t in available if t.pack_id == pack_id]
    if not of_pack:
        installed = sorted({t.pack_id for t in available})
        raise TemplateError(
            f"{pack_id}: no installed gpack with templates by that id"
            f"{did_you_mean(pack_id, installed, aside=True)}"
            f" (install it with `ggen market add {pack_id}`)"
        )
    if not name:
        return of_pack
    for template in of_pack:
        if name in (template.name, template.path.name, template.path.stem):
            return [template]
    names = [t.name for t in of_pack]
    raise TemplateError(
        f"{pack_id}: no template {name!r}{did_you_mean(name, names, aside=True)};"
        f" it has {', '.join(names)}"
    )


@dataclass
class Action:
    """What happens to one output file."""

    path: Path
    rel: str
    action: str  # create, overwrite, inject, unchanged, skip
    template: str
    reason: str = ""
    content: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, str]:
        return {"path": self.rel, "action": self.action, "template": self.template,
                "reason": self.reason}  # fmt: skip


class _Overlay:
    """The output directory as the run so far would leave it."""

    def __init__(self) -> None:
        self.planned: dict[Path, str] = {}

    def read(self, path: Path) -> str | None:
        if path in self.planned:
            return self.planned[path]
        if path.is_file():
            try:
                return path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise TemplateError(f"{path}: exists and is not UTF-8 text") from None
        if path.exists():
            raise TemplateError(f"{path}: exists and is not a regular file")
        return None


def _where(exc: BaseException, source: TemplateSource) -> str:
    """``file:line`` of the template line an error was raised on, when known."""
    name = str(source.path)
    line = getattr(exc, "lineno", None)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == name and frame.lineno:
            line = frame.lineno
            break
    return f"{name}:{source.body_line + line - 1}" if line else name


def _render_error(exc: Exception, source: TemplateSource, context: dict[str, Any]) -> TemplateError:
    from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    where = _where(exc, source)
    if isinstance(exc, TemplateError):  # a render limit
        return type(exc)(f"{where}: {exc}")
    if isinstance(exc, RecursionError):
        return TemplateError(f"{where}: rendering failed: nested too deeply")
    if isinstance(exc, SecurityError):
        return SandboxViolationError(f"{where}: refused by the template sandbox: {exc}")
    if isinstance(exc, UndefinedError):
        match = re.search(r"'([^']+)' is undefined", str(exc))
        hint = _query_hint(match.group(1), context) if match else ""
        hint = hint or (did_you_mean(match.group(1), context, aside=True) if match else "")
        extra = f" (pass --var {match.group(1)}=...)" if match and not hint else ""
        return TemplateError(f"{where}: {exc}{hint}{extra}")
    if isinstance(exc, TemplateNotFound):
        return SandboxViolationError(f"{where}: cannot include {exc}")
    if isinstance(exc, TemplateSyntaxError):
        return TemplateError(f"{where}: template syntax error: {exc.message}")
    return TemplateError(f"{where}: rendering failed: {type(exc).__name__}: {exc}")


def _query_hint(name: str, context: dict[str, Any]) -> str:
    """`` (did you mean `sparql.rows`?)`` when ``name`` is (close to) a query's name."""
    queries = context.get("sparql")
    if not isinstance(queries, dict) or not queries:
        return ""
    query = name if name in queries else closest(name, list(queries))
    return f" (did you mean `sparql.{query}`?)" if query else ""


class Generator:
    """Plans and writes the output of templates into ``out``."""

    def __init__(self, out: Path, variables: dict[str, str], *, force: bool = False) -> None:
        self.out = out
        self.real_out = out.resolve()
        self.variables = variables
        self.force = force
        self.overlay = _Overlay()
        self.actions: list[Action] = []
        self.hooks: list[Hook] = []
        self.warnings: list[str] = []

    def plan(self, template: GpackTemplate) -> list[Action]:
        """Render ``template`` against the current overlay; nothing is written yet.

        One file, or with ``for_each: QUERY`` one per row of that query (the row's columns and
        ``row`` are variables of that file's body and ``to:``).
        """
        source = parse_template(template.path)
        if source.front.to is None:  # ggen names the output on its command line
            front = source.front.model_copy(update={"to": template.name})
            source = dataclasses.replace(source, front=front)
        front = source.front
        self.warnings.extend(
            f"{source.path}: front matter: {key}: unknown key ignored (not a key of this front"
            " matter; ggen ignores it too)"
            for key in source.ignored
        )
        for entry in front.shape:
            gpack_file(template, entry, "shape")
        base: dict[str, Any] = {**front.vars, **self.variables}
        base["gpack"] = {"id": template.pack_id, "version": template.version}
        data = TemplateData.load(template, source)
        data.bind(base)
        env = make_environment(template.root)
        self.hooks.extend(_hooks(env, template, source, base))
        contexts = [base]
        if front.for_each is not None:
            contexts = [{**base, **row, "row": row} for row in data.results[front.for_each]]
        planned = [self._plan_one(template, source, env, context) for context in contexts]
        self.actions.extend(planned)
        return planned

    def _plan_one(
        self, template: GpackTemplate, source: TemplateSource, env: Any, context: dict[str, Any]
    ) -> Action:
        front = source.front
        content, to, anchors = _render(env, source, context)
        if front.determinism and _render(env, source, context)[0] != content:
            raise TemplateError(
                f"{source.path}: determinism: rendering twice gave different output (now(),"
                " or data that changes between renders); refusing to write it"
            )
        target, rel = self._target(to, source)
        if front.skip_empty and not content.strip():
            return Action(target, rel, "skip", template.ref, "empty output (skip_empty)")
        frozen = self._frozen(source, target, rel)
        if frozen:
            return Action(target, rel, "skip", template.ref, frozen)
        action = self._decide(template, source, target, rel, content, anchors)
        if action.content is not None:
            self.overlay.planned[target] = action.content
            if front.freeze_policy == "checksum" and action.action not in ("skip", "unchanged"):
                self._record_checksum(template, source, rel, action.content)
        return action

    def _slot(self, source: TemplateSource, rel: str) -> tuple[Path, str]:
        """Where ``freeze_policy: checksum`` keeps the checksum of output ``rel``."""
        return self._target(f"{source.front.freeze_slots_dir}/{rel}.sha256", source)

    def _frozen(self, source: TemplateSource, target: Path, rel: str) -> str | None:
        """Why ``freeze_policy`` keeps an existing output as it is, if it does."""
        policy = source.front.freeze_policy
        existing = self.overlay.read(target) if policy in ("always", "checksum") else None
        if existing is None:
            return None
        if policy == "always":
            return "exists (freeze_policy: always)"
        recorded = self.overlay.read(self._slot(source, rel)[0])
        if recorded is not None and recorded.strip() != _sha256(existing):
            return "edited since it was generated (freeze_policy: checksum)"
        return None

    def _record_checksum(
        self, template: GpackTemplate, source: TemplateSource, rel: str, content: str
    ) -> None:
        slot, slot_rel = self._slot(source, rel)
        text = _sha256(content) + "\n"
        existing = self.overlay.read(slot)
        action = "create" if existing is None else "unchanged" if existing == text else "overwrite"
        record = Action(slot, slot_rel, action, template.ref, f"checksum of {rel}", content=text)
        self.overlay.planned[slot] = text
        self.actions.append(record)

    def _target(self, to: str, source: TemplateSource) -> tuple[Path, str]:
        if not to or to.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", to):
            raise OutputEscapeError(
                f"{source.path}: to: {to!r} must be a path relative to the output directory"
            )
        target = (self.out / to).resolve()
        if not target.is_relative_to(self.real_out) or target == self.real_out:
            raise OutputEscapeError(
                f"{source.path}: to: {to!r} resolves to {target}, outside the output directory"
                f" {self.real_out}; refusing to write it"
            )
        return target, target.relative_to(self.real_out).as_posix()

    def _decide(
        self,
        template: GpackTemplate,
        source: TemplateSource,
        target: Path,
        rel: str,
        content: str,
        anchors: dict[str, str],
    ) -> Action:
        front = source.front
        existing = self.overlay.read(target)
        act = Action(path=target, rel=rel, action="create", template=template.ref)
        skip_if = anchors.get("skip_if")
        if existing is not None and skip_if and _search(skip_if, existing, source, "skip_if"):
            act.action, act.reason = "skip", f"skip_if {skip_if!r} matches"
            return act
        if front.inject:
            return self._inject(act, source, existing, content, anchors)
        if existing is None:
            act.content = content
            return act
        if front.unless_exists:
            act.action, act.reason = "skip", "exists (unless_exists)"
            return act
        if existing == content:
            act.action = "unchanged"
            return act
        if not (front.force or self.force):
            raise TemplateError(
                f"{target}: exists with different content; refusing to overwrite it from"
                f" {template.ref} (use --force, or force: true in the front matter)"
            )
        act.action, act.content = "overwrite", content
        return act

    def _inject(
        self,
        act: Action,
        source: TemplateSource,
        existing: str | None,
        content: str,
        anchors: dict[str, str],
    ) -> Action:
        front = source.front
        snippet = content if content.endswith("\n") else content + "\n"
        if existing is not None and snippet.strip() and snippet.strip() in existing:
            act.action, act.reason = "unchanged", "already injected"
            return act
        if existing is None:
            if front.append or front.prepend:
                act.content = snippet
                return act
            raise TemplateError(
                f"{act.path}: cannot inject {act.template} {'before' if front.before else 'after'}"
                " an anchor: the file does not exist"
            )
        act.action = "inject"
        text = existing if existing.endswith("\n") or not existing else existing + "\n"
        if front.append:
            act.content = text + snippet
        elif front.prepend:
            act.content = snippet + existing
        else:
            key = "before" if front.before else "after"
            pattern = anchors[key]
            lines = existing.splitlines(keepends=True)
            index = next(
                (i for i, line in enumerate(lines)
                 if _search(pattern, line.rstrip("\r\n"), source, key)),
                None,
            )  # fmt: skip
            if index is None:
                raise TemplateError(
                    f"{act.path}: cannot inject {act.template}: no line matches {key}: {pattern!r}"
                )
            if key == "after":
                index += 1
                if index == len(lines) and not lines[-1].endswith("\n"):
                    lines[-1] += "\n"
            lines.insert(index, snippet)
            act.content = "".join(lines)
        return act

    def write(self) -> None:
        """Write every planned file, all or nothing: each is staged beside its path (directories
        created) before the first takes effect; a failure removes what staging made."""
        from pytest_cleanroom.safe_write import write_outputs

        planned = [
            a
            for a in self.actions
            if a.content is not None and a.action not in ("unchanged", "skip")
        ]
        created: list[Path] = []
        try:
            for action in planned:
                self._mkdirs(action.path.parent, created)
            # Re-check: a directory swapped for a link after planning must not redirect us.
            for action in planned:
                if not action.path.parent.resolve().is_relative_to(self.real_out):
                    raise OutputEscapeError(f"{action.path}: left the output directory")
            # A file created and injected into in one run: its last action holds the final text.
            final = {a.path: a.content or "" for a in planned}
            write_outputs(final.items(), mode=0o644)
        except OSError as exc:
            self._remove(created)
            where = exc.filename or self.out
            raise TemplateError(
                f"cannot write the generated files under {self.out}: {where}: "
                f"{exc.strerror or exc}; nothing was written"
            ) from None
        except BaseException:
            self._remove(created)
            raise

    @staticmethod
    def _remove(created: list[Path]) -> None:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()

    def _mkdirs(self, directory: Path, created: list[Path]) -> None:
        missing = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                raise TemplateError(
                    f"cannot write under {path}: it exists and is not a directory; move it away "
                    "or change the template's `to:` path"
                ) from None
            created.append(path)
            if not path.resolve().is_relative_to(self.real_out):
                raise OutputEscapeError(f"{path}: outside the output directory")


#: Seconds an injection pattern (skip_if, before, after) may search the existing file: far more
#: than a sane pattern needs, and the end of one that backtracks catastrophically (``(a+)+$``).
PATTERN_SECONDS = 10.0


def _render(
    env: Any, source: TemplateSource, context: dict[str, Any]
) -> tuple[str, str, dict[str, str]]:
    """(body, ``to:`` path, anchors) of a template rendered with ``context``."""
    front = source.front
    try:
        body = env.from_string(source.body)
        body.filename = str(source.path)
        content = env.render_bounded(body, context)
        to = env.render_bounded(env.from_string(front.to or ""), context).strip()
        anchors = {
            key: env.render_bounded(env.from_string(value), context)
            for key in ("before", "after", "skip_if")
            if isinstance(value := getattr(front, key), str)
        }
    except Exception as exc:
        raise _render_error(exc, source, context) from None
    return content, to, anchors


def _hooks(
    env: Any, template: GpackTemplate, source: TemplateSource, context: dict[str, Any]
) -> list[Hook]:
    """The template's ``sh_before``/``sh_after`` commands, rendered with its variables."""
    found = []
    for key in HOOK_KEYS:
        command = getattr(source.front, key)
        if not command:
            continue
        try:
            rendered = env.render_bounded(env.from_string(command), context).strip()
        except Exception as exc:
            raise _render_error(exc, source, context) from None
        found.append(Hook(template.ref, source.path, key, rendered))
    return found


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _search(pattern: str, text: str, source: TemplateSource, key: str) -> bool:
    try:
        with time_limit(PATTERN_SECONDS):
            return re.search(pattern, text, re.MULTILINE) is not None
    except re.error as exc:
        raise TemplateError(f"{source.path}: front matter: {key}: bad pattern: {exc}") from None
    except DeadlineExceededError:
        raise TemplateError(
            f"{source.path}: front matter: {key}: pattern {pattern[:80]!r} took over "
            f"{PATTERN_SECONDS:g} s on the existing file: it backtracks catastrophically; "
            "rewrite it without nested repetition such as (a+)+ or (a|a)*"
        ) from None


def generate(
    templates: list[GpackTemplate],
    out: Path,
    variables: dict[str, str],
    *,
    force: bool = False,
    dry_run: bool = False,
    hook_policy: str = DEFAULT_HOOK_POLICY,
    hook_backend: str = "auto",
    on_hook: OnHook | None = None,
    on_warning: Callable[[str], None] | None = None,
    hooks_confined_by: str | None = None,
) -> list[Action]:
    """Render ``templates`` into ``out``; all are planned before anything is written.

    Templates with ``sh_before``/``sh_after`` hooks: once every template rendered, the
    ``sh_before`` commands run in a cleanroom on ``out`` (policy ``hook_policy``), the templates
    are planned again (they see what the commands made), the files are written, then the
    ``sh_after`` commands run. ``on_hook`` gets each hook's record (``ran`` false in a dry run),
    ``on_warning`` each front-matter key ignored. ``hooks_confined_by`` (only ``ggen market
    validate`` inside its cleanroom sets it) names that cleanroom's policy: hooks run directly.
    """
    if not dry_run:
        out.mkdir(parents=True, exist_ok=True)
    generator = _planned(templates, out, variables, force)
    if on_warning is not None:
        for warning in generator.warnings:
            on_warning(warning)
    if dry_run or not generator.hooks:
        for hook in generator.hooks:
            if on_hook is not None:
                on_hook(HookRun(hook, ran=False, policy=hook_policy))
        if not dry_run:
            generator.write()
        return generator.actions
    with HookRunner(out, policy=hook_policy, backend=hook_backend, on_hook=on_hook,
                    confined_by=hooks_confined_by) as hooks:  # fmt: skip
        befores = [h for h in generator.hooks if h.key == "sh_before"]
        for hook in befores:
            hooks.run(hook)
        if befores:
            generator = _planned(templates, out, variables, force)
        generator.write()
        for hook in generator.hooks:
            if hook.key == "sh_after":
                hooks.run(hook, after_writing=True)
    return generator.actions


def _planned(
    templates: list[GpackTemplate], out: Path, variables: dict[str, str], force: bool
) -> Generator:
    generator = Generator(out, variables, force=force)
    for template in templates:
        generator.plan(template)
    return generator
