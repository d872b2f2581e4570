"""``ggen market serve``: the click command mounted by ``market``."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import click

from ..cli import json_command
from ..errors import MarketError
from .protocol import MAX_UPLOAD_BYTES, TOKEN_ENV


def read_tokens(token_file: Path | None) -> list[str]:
    """``$GGEN_REGISTRY_TOKEN`` and the lines of ``--token-file`` (only its owner may read it)."""
    tokens = [os.environ[TOKEN_ENV].strip()] if os.environ.get(TOKEN_ENV, "").strip() else []
    if token_file is None:
        return tokens
    mode = stat.S_IMODE(token_file.stat().st_mode)
    if mode & 0o077:
        raise MarketError(
            f"--token-file {token_file}: readable by others (mode {mode:o}); chmod 600 it"
        )
    lines = token_file.read_text(encoding="utf-8").splitlines()
    tokens += [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]
    if len(tokens) == 0 or any(len(t) < 16 for t in tokens):
        raise MarketError(f"--token-file {token_file}: every token needs 16 characters or more")
    return tokens


def _keys(paths: tuple[Path, ...]) -> list[Any]:
    from pytest_cleanroom.attest.keys import KeyFileError, VerifyingKey

    try:
        return [VerifyingKey.load(p) for p in paths]
    except KeyFileError as exc:
        raise MarketError(f"--trusted-key: {exc}") from None


def _check_root(root: Path) -> None:
    from .intake import read_packs

    if not root.is_dir():
        raise MarketError(f"{root}: not a directory (create it, empty, for a new registry)")
    read_packs(root)  # a malformed index stops the server before it serves it


@click.command(short_help="Serve a registry directory over HTTP and take validated uploads.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0: a free one, printed).")  # fmt: skip
@click.option("--trusted-key", "trusted_keys", multiple=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Public key (PEM) whose validation statements count. Repeatable.")  # fmt: skip
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=f"Upload tokens, one a line (mode 600); also ${TOKEN_ENV}.")  # fmt: skip
@click.option("--max-upload-bytes", type=click.IntRange(min=1024), default=MAX_UPLOAD_BYTES,
              show_default=True, help="Largest publish request accepted.")  # fmt: skip
@click.option("--read-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds one read of a request may wait (then it is dropped), and its line"
              " and headers in all (then 408).")  # fmt: skip
@click.option("--upload-timeout", type=click.FloatRange(min=0.1), default=300.0, show_default=True,
              help="Seconds a request's body may take to arrive; then it is cut (408) and"
              " nothing is written.")  # fmt: skip
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Serve HTTPS with this certificate chain (PEM).")  # fmt: skip
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The private key of --tls-cert (PEM).")  # fmt: skip
@json_command
def serve(
    directory: Path,
    host: str,
    port: int,
    trusted_keys: tuple[Path, ...],
    token_file: Path | None,
    max_upload_bytes: int,
    read_timeout: float,
    upload_timeout: float,
    tls_cert: Path | None,
    tls_key: Path | None,
    as_json: bool,
) -> None:
    """Serve DIRECTORY (index.json, archives/) to `ggen market add`, and take uploads from
    `ggen market publish --registry URL`: with a token, a passing statement signed by a
    --trusted-key for exactly the archive, and only new versions. Runs until interrupted."""
    from .server import serve_registry

    _check_root(directory)
    tokens = read_tokens(token_file)
    if tokens and not trusted_keys:
        raise MarketError("uploads need at least one --trusted-key (who validates the gpacks)")
    if (tls_cert is None) != (tls_key is None):
        raise MarketError("--tls-cert and --tls-key go together")
    tls = (tls_cert, tls_key) if tls_cert and tls_key else None
    server = serve_registry(
        directory, host=host, port=port, tokens=tokens, keys=_keys(trusted_keys),
        max_upload_bytes=max_upload_bytes, read_timeout=read_timeout,
        upload_timeout=upload_timeout, tls=tls,
        log=_logger(as_json),
    )  # fmt: skip
    bound_host, bound_port = server.server_address[:2]
    url = f"{'https' if tls else 'http'}://{_host(str(bound_host))}:{bound_port}/"
    uploads = f"{len(tokens)} token(s), {len(trusted_keys)} trusted key(s)" if tokens else "off"
    if as_json:
        _line({"ok": True, "url": url, "root": str(directory.resolve()), "uploads": bool(tokens)})
    else:
        click.echo(f"serving {directory} at {url} (uploads: {uploads}); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _line(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, ensure_ascii=True))


def _logger(as_json: bool) -> Any:
    def log(event: dict[str, Any]) -> None:
        if as_json:
            _line({"event": "request", **event})
            return
        detail = f"  {event['detail']}" if event.get("detail") else ""
        click.echo(f"{event.get('method', '-')} {event.get('path', '-')} {event['status']}{detail}",
                   err=True)  # fmt: skip

    return log
