"""``batchkit``: the command group.  Each command lives in its own module."""

from __future__ import annotations

import click

from batchkit import __version__
from batchkit.cli.version import version_option


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_option(__version__)
def cli() -> None:
    """Build, validate and submit JSONL batch files for OpenAI-style Batch APIs."""


def _register() -> None:
    # Imported here so that each command module can import `cli` helpers without cycles.
    from batchkit.cli import (
        batch_cmds,
        build_cmd,
        download_cmd,
        estimate_cmd,
        results_cmd,
        run_cmd,
        submit_cmds,
        validate_cmd,
    )

    cli.add_command(validate_cmd.validate)
    cli.add_command(build_cmd.build)
    cli.add_command(submit_cmds.submit)
    for command in batch_cmds.COMMANDS:
        cli.add_command(command)
    cli.add_command(download_cmd.download)
    cli.add_command(results_cmd.results)
    cli.add_command(run_cmd.run)
    cli.add_command(run_cmd.job)
    cli.add_command(estimate_cmd.estimate)


_register()


def main() -> None:
    cli(prog_name="batchkit")
