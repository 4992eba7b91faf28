"""``batchkit``: the command group.  Each command lives in its own module."""

from __future__ import annotations

import importlib

import click

from batchkit import __version__
from batchkit.cli.version import version_option

#: Each command, and where it is defined (``module:attribute``).  A command's module is only
#: imported when that command runs (or the help lists them all): ``batchkit validate`` does
#: not import the HTTP client, the progress bar or the builder.
COMMANDS = {
    "validate": "batchkit.cli.validate_cmd:validate",
    "build": "batchkit.cli.build_cmd:build",
    "submit": "batchkit.cli.submit_cmds:submit",
    "status": "batchkit.cli.batch_cmds:status",
    "list": "batchkit.cli.batch_cmds:list_cmd",
    "cancel": "batchkit.cli.batch_cmds:cancel",
    "wait": "batchkit.cli.batch_cmds:wait",
    "download": "batchkit.cli.download_cmd:download",
    "results": "batchkit.cli.results_cmd:results",
    "run": "batchkit.cli.run_cmd:run",
    "job": "batchkit.cli.run_cmd:job",
    "estimate": "batchkit.cli.estimate_cmd:estimate",
}


class _Commands(click.Group):
    """A group whose commands are imported when asked for (:data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@version_option(__version__)
def cli() -> None:
    """Build, validate and submit JSONL batch files for OpenAI-style Batch APIs."""


def main() -> None:
    cli(prog_name="batchkit")
