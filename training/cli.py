"""The operator's command line: ``restauro train | models | inpaint | route | serve | worker``.

A thin adapter: parse flags (defaults from ``restauro.config.Settings``), call the core, print.
Every :class:`~restauro.errors.RestauroError` becomes one line on stderr and a non-zero exit
(2 for a bad input or parameter, 1 otherwise); a traceback means a bug in Restauro.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from restauro.errors import InvalidInput, RestauroError
from training.cli_app import app

# The command modules register themselves on ``app`` when imported, in the order --help lists.
for _commands in ("cli_train", "cli_models", "cli_inpaint", "cli_evaluate"):
    importlib.import_module(f"training.{_commands}")

# --- serve / worker ------------------------------------------------------------------------------
# Both hand every argument on unchanged: the entry points own their flags (one definition, in
# restauro/cli_flags.py and the two __main__ modules), so no flag is ever dropped on the way.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=PASS_THROUGH, add_help_option=False)
def serve(ctx: typer.Context) -> None:
    """Run the HTTP API and a worker on this machine (no Redis unless RESTAURO_BROKER_URL).

    Every flag of `python -m service` applies (--help lists them): --registry, --host, --port,
    --device, --job-time-limit-s, --worker-concurrency, ...
    """
    _exec_module("service", ["--with-worker", *ctx.args])


@app.command(context_settings=PASS_THROUGH, add_help_option=False)
def worker(ctx: typer.Context) -> None:
    """Run a Celery worker consuming the given clusters' queues (one per GPU: --device cuda:N).

    Every flag of `python -m worker` applies (--help lists them): --clusters, --general,
    --registry, --device, --pool, --concurrency, --job-time-limit-s, ...
    """
    _exec_module("worker", list(ctx.args))


def _exec_module(module: str, args: list[str]) -> None:
    """Replace this process by ``python -m module``: the adapters stay apart, signals go through."""
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


def main() -> None:
    """Console-script entry: Restauro's typed errors become one line each and an exit code.

    Usage errors (a missing or malformed flag) are reported by the CLI framework itself, exit 2.
    """
    try:
        app()
    except RestauroError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        sys.exit(2 if isinstance(exc, InvalidInput) else 1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
