"""Command groups shared by the modules that add commands to the ``demandcast`` app."""

from __future__ import annotations

import typer


def command_group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """The sub-app ``name`` of ``app``: the one already registered, else a new one.

    Several modules add commands to the same group (``bench``, ``check``): whichever
    registers first creates it, the others find it in ``app.registered_groups``.
    """
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group
