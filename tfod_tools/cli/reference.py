"""Generate the CLI reference (``docs/cli.md``) from the Typer app itself.

The reference is rendered from the same command tree that parses arguments, so it cannot drift
from the code: a test regenerates it and compares it with the checked-in file.
Regenerate with ``python -m tfod_tools.cli.reference > docs/cli.md``.

>>> text = render_reference()
>>> text.startswith("# CLI reference")
True
"""

from __future__ import annotations

from typing import Any

import typer

from tfod_tools.cli.app import _load_commands, app
from tfod_tools.errors import EXIT_CODES


def _param_line(param: Any, ctx: typer.Context) -> str | None:
    if param.param_type_name == "argument":
        required = ", required" if param.required else ""
        help_text = " ".join((getattr(param, "help", None) or "").split())
        line = f"- `{str(param.name).upper()}` (argument{required})"
        return line + (f": {help_text}" if help_text else "")
    record = param.get_help_record(ctx)
    if record is None:
        return None
    names, help_text = record
    return f"- `{names}`" + (f": {' '.join(help_text.split())}" if help_text else "")


def render_reference() -> str:
    """Render every ``tfod`` command, its summary and its options as Markdown."""
    _load_commands()
    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name="tfod")
    lines = [
        "# CLI reference",
        "",
        "Generated from the Typer app by `python -m tfod_tools.cli.reference`; a test keeps it in sync.",
        "Every command accepts `--help`. Errors print one line to stderr and exit with code 2; a value "
        "outside an option's listed choices (`<a|b>`) is a usage error, also exit 2.",
        "",
        "## Exit codes",
        "",
        "| code | meaning |",
        "|---:|---|",
        *(f"| {code} | {meaning} |" for code, meaning in sorted(EXIT_CODES.items())),
        "",
    ]
    for name in sorted(group.list_commands(ctx)):  # type: ignore[attr-defined]
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        if command is None or command.hidden:
            continue
        sub_ctx = typer.Context(command, info_name=name, parent=ctx)
        usage = " ".join(command.collect_usage_pieces(sub_ctx))
        lines += [f"## `tfod {name}`", "", " ".join((command.help or "").split()), ""]
        lines += ["```", f"tfod {name} {usage}".rstrip(), "```", ""]
        rendered = (_param_line(p, sub_ctx) for p in command.params if not getattr(p, "hidden", False))
        lines += [line for line in rendered if line]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
