"""Entry point of the `crmbot` console script."""

from __future__ import annotations

import importlib
import pkgutil

import typer

import crmbot.cli

app = typer.Typer(
    name="crmbot",
    help="Data-driven customer relationship management, in Slack and in your terminal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """crmbot: segments, CLV, churn risk and influence for your customers, answered in chat."""
    from crmbot.cli.common import setup_logging

    setup_logging()


def _register_all() -> None:
    # Each module in crmbot/cli adds its own commands; none is imported by name.
    for info in sorted(pkgutil.iter_modules(crmbot.cli.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"crmbot.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    app()
