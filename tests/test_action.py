"""The composite GitHub Action (``action.yml``), run here the way a runner would run it.

Each step's ``run:`` script is executed with ``bash --noprofile --norc -eo pipefail`` (what
GitHub runs for ``shell: bash``), its ``env:`` and ``if:`` expressions evaluated, and fresh
``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` files, as a runner gives each step.  The install
step really creates a venv and pip-installs the action's own checkout (offline, from a
wheelhouse); the submit step talks to the fake orq server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers import REPO, jsonl, request
from tests.servers.cli import batch_file, clean_env
from tests.servers.fake_orq import FakeOrq
from tests.servers.offline_pip import build_wheelhouse, copy_source, offline_env

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
SECRET = "sk-orq-ACTION-S3CRET-5e1f02"

#: The rules of SchemaStore's schema for action metadata (``src/schemas/json/github-action.json``
#: in github.com/SchemaStore/schemastore, served as https://json.schemastore.org/github-action.json),
#: restated for what this action uses: the required keys, inputs and composite outputs with
#: their required fields, and composite steps that either ``run`` with a ``shell`` or ``uses``.
ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "description", "runs"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "author": {"type": "string"},
        "description": {"type": "string"},
        "branding": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"icon": {"type": "string"}, "color": {"type": "string"}},
        },
        "inputs": {
            "type": "object",
            "additionalProperties": False,
            "patternProperties": {
                "^[_a-zA-Z][a-zA-Z0-9_-]*$": {
                    "type": "object",
                    "required": ["description", "required"],
                    "additionalProperties": False,
                    "properties": {
                        "description": {"type": "string"},
                        "deprecationMessage": {"type": "string"},
                        "required": {"type": "boolean"},
                        "default": {"type": "string"},
                    },
                }
            },
        },
        "outputs": {
            "type": "object",
            "additionalProperties": False,
            "patternProperties": {
                "^[_a-zA-Z][a-zA-Z0-9_-]*$": {
                    "type": "object",
                    "required": ["description", "value"],
                    "additionalProperties": False,
                    "properties": {"description": {"type": "string"}, "value": {"type": "string"}},
                }
            },
        },
        "runs": {
            "type": "object",
            "required": ["using", "steps"],
            "additionalProperties": False,
            "properties": {
                "using": {"const": "composite"},
                "steps": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "oneOf": [{"required": ["run", "shell"]}, {"required": ["uses"]}],
                        "properties": {
                            "run": {"type": "string"},
                            "shell": {"type": "string"},
                            "uses": {"type": "string"},
                            "with": {"type": "object"},
                            "name": {"type": "string"},
                            "id": {"type": "string"},
                            "if": {"type": "string"},
                            "env": {"type": "object", "additionalProperties": {"type": "string"}},
                            "working-directory": {"type": "string"},
                            "continue-on-error": {"type": ["boolean", "string"]},
                        },
                    },
                },
            },
        },
    },
}

_EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
_EQUALS = re.compile(r"^(\S+)\s*==\s*'([^']*)'$")


@dataclass
class Step:
    """What one step did: ``outcome`` is success, failure or skipped."""

    outcome: str
    outputs: dict[str, str] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    summary: str = ""


@dataclass
class ActionRun:
    steps: dict[str, Step]
    outputs: dict[str, str]

    @property
    def succeeded(self) -> bool:
        return all(step.outcome != "failure" for step in self.steps.values())

    def text(self) -> str:
        """Everything the run printed or wrote, for assertions that nothing leaked."""
        parts = [(s.stdout, s.stderr, s.summary, *s.outputs.values()) for s in self.steps.values()]
        return "\n".join(text for part in parts for text in part)


class Runner:
    """Runs action.yml's steps for one set of inputs, in ``workspace``."""

    def __init__(self, action_path: Path, temp: Path, env: Mapping[str, str]) -> None:
        self.action_path = action_path
        self.temp = temp
        self.env = dict(env)

    def run(
        self,
        inputs: Mapping[str, str],
        workspace: Path,
        *,
        only: set[str] | None = None,
        done: Mapping[str, Step] | None = None,
    ) -> ActionRun:
        """Every step, or ``only`` those; ``done`` steps count as already run."""
        context = {
            "inputs": {
                name: inputs.get(name, spec.get("default", ""))
                for name, spec in ACTION["inputs"].items()
            },
            "steps": dict(done or {}),
        }
        unknown = set(inputs) - set(ACTION["inputs"])
        assert not unknown, f"not inputs of the action: {unknown}"
        failed = False
        for index, spec in enumerate(ACTION["runs"]["steps"]):
            step_id = spec.get("id", f"step{index}")
            if step_id in context["steps"] or (only is not None and step_id not in only):
                continue
            wanted = not failed and ("if" not in spec or bool(evaluate(spec["if"], context)))
            step = self._run_step(spec, context, workspace, index) if wanted else Step("skipped")
            context["steps"][step_id] = step
            failed = failed or step.outcome == "failure"
        outputs = {
            name: substitute(spec["value"], context) for name, spec in ACTION["outputs"].items()
        }
        return ActionRun(context["steps"], outputs)

    def _run_step(
        self, spec: Mapping[str, Any], context: Mapping[str, Any], workspace: Path, index: int
    ) -> Step:
        assert "${{" not in spec["run"], "inputs reach a script through env only"
        assert spec["shell"] == "bash"
        files = {name: self.temp / f"{name}-{index}" for name in ("output", "summary", "script")}
        files["output"].write_text("")
        files["summary"].write_text("")
        files["script"].write_text(spec["run"])
        env = {
            **self.env,
            **{key: substitute(value, context) for key, value in spec.get("env", {}).items()},
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
            "GITHUB_ACTION_PATH": str(self.action_path),
            "RUNNER_TEMP": str(self.temp),
        }
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(files["script"])],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return Step(
            "success" if result.returncode == 0 else "failure",
            read_outputs(files["output"].read_text()),
            result.stdout,
            result.stderr,
            files["summary"].read_text(),
        )


def evaluate(expression: str, context: Mapping[str, Any]) -> str | bool:
    """The expressions action.yml uses: ``inputs.NAME``, ``steps.ID.outputs.NAME`` and
    ``X == 'literal'``.  Anything else fails the test, rather than being guessed at."""
    comparison = _EQUALS.match(expression.strip())
    if comparison:
        return evaluate(comparison[1], context) == comparison[2]
    parts = expression.strip().split(".")
    if parts[0] == "inputs" and len(parts) == 2:
        return str(context["inputs"][parts[1]])
    if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
        step = context["steps"].get(parts[1])
        return step.outputs.get(parts[3], "") if step else ""
    raise AssertionError(f"an expression this test does not evaluate: {expression!r}")


def substitute(text: str, context: Mapping[str, Any]) -> str:
    return _EXPRESSION.sub(lambda match: str(evaluate(match[1], context)), text)


def read_outputs(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT``'s two forms: ``name=value`` and ``name<<DELIMITER`` ... ``DELIMITER``."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            outputs[name] = "\n".join(iter(lambda: next(lines), delimiter))
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def readme_yaml(containing: str) -> Any:
    """The README's YAML example that contains ``containing``, parsed."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", (REPO / "README.md").read_text(), re.M | re.S)
    (block,) = [block for block in blocks if containing in block]
    return yaml.safe_load(block)


ANNOTATION = re.compile(r"^::(error|warning) file=([^,]+),line=(\d+),title=([^:]+)::", re.M)


def workflow_annotations(text: str) -> list[tuple[str, str, int, str]]:
    return [(kind, path, int(line), title) for kind, path, line, title in ANNOTATION.findall(text)]


# --- the metadata ----------------------------------------------------------------------------


def test_action_metadata_follows_the_schema() -> None:
    jsonschema.Draft7Validator(ACTION_SCHEMA).validate(ACTION)
    assert {"files", "profile", "strict", "submit", "api-key"} <= set(ACTION["inputs"])
    assert ACTION["inputs"]["files"]["required"] is True
    assert "batch_id" in ACTION["outputs"]
    # Every expression names an input or an earlier step that exists.
    step_ids = [step.get("id") for step in ACTION["runs"]["steps"]]
    text = (REPO / "action.yml").read_text()
    for name in re.findall(r"inputs\.([\w-]+)", text):
        assert name in ACTION["inputs"], name
    for name in re.findall(r"steps\.([\w-]+)\.outputs", text):
        assert name in step_ids, name


def test_a_metadata_mistake_is_caught_by_the_schema() -> None:
    broken = {**ACTION, "inputs": {"files": {"description": "no required key"}}}
    errors = list(jsonschema.Draft7Validator(ACTION_SCHEMA).iter_errors(broken))
    assert any("'required' is a required property" in error.message for error in errors)
    step_without_shell = {"run": "echo hi"}
    runs = {"using": "composite", "steps": [step_without_shell]}
    assert not jsonschema.Draft7Validator(ACTION_SCHEMA).is_valid({**ACTION, "runs": runs})


def test_the_readme_workflow_uses_the_action_and_keeps_the_run_results() -> None:
    workflow = readme_yaml("OWNER/batchkit@")
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step for step in steps if step.get("uses", "").startswith("OWNER/batchkit@")]
    assert uses and all(set(step["with"]) <= set(ACTION["inputs"]) for step in uses)
    (submit,) = [step for step in uses if step["with"].get("submit") is True]
    assert submit["with"]["api-key"] == "${{ secrets.ORQ_API_KEY }}"
    assert any(f"steps.{submit['id']}.outputs.batch_id" in step.get("run", "") for step in steps)

    results = workflow["jobs"]["results"]
    (run,) = [step for step in results["steps"] if "batchkit run" in step.get("run", "")]
    assert run["run"].split() == [
        *("batchkit", "run", "prompts.jsonl", "-o", "results.jsonl"),
        *("--endpoint", "/v1/chat/completions", "--model", "openai/gpt-4o-mini"),
    ]
    assert "secrets." in run["env"]["ORQ_API_KEY"]
    (upload,) = [step for step in results["steps"] if "upload-artifact" in step.get("uses", "")]
    assert upload["uses"] == "actions/upload-artifact@v4" and upload["if"] == "always()"
    assert upload["with"]["path"] == "results.jsonl"


# --- running it ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    """The action's checkout (a copy of this one) and a runner environment whose pip reads
    only a local wheelhouse; ``python3`` is this interpreter, which the wheels fit."""
    root = tmp_path_factory.mktemp("action")
    env = offline_env(build_wheelhouse(root / "wheelhouse"), clean_env())
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    temp = root / "runner-temp"
    temp.mkdir()
    return Runner(copy_source(root / "batchkit"), temp, env)


@pytest.fixture(scope="module")
def installed(runner: Runner, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Step]:
    """The install step, run once for the module's tests."""
    run = runner.run({"files": "x"}, tmp_path_factory.mktemp("install"), only={"install"})
    step = run.steps["install"]
    assert step.outcome == "success", step.stdout + step.stderr
    assert Path(step.outputs["batchkit"]).is_file()
    return {"install": step}


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "requests").mkdir()
    yield tmp_path


@pytest.mark.slow
def test_validate_annotates_the_exact_lines_and_nothing_is_submitted(
    runner: Runner, installed: dict[str, Step], workspace: Path, fake_orq: FakeOrq
) -> None:
    (workspace / "requests" / "good.jsonl").write_bytes(jsonl(request("a")))
    bad = jsonl(request("a"), request("b", url="/chat/completions"), request("a"), b"", b"{x")
    (workspace / "requests" / "bad.jsonl").write_bytes(bad)
    run = runner.run(
        {"files": "requests/*.jsonl", "submit": "true", "base-url": fake_orq.url},
        workspace,
        done=installed,
    )
    validate = run.steps["validate"]
    assert validate.outcome == "failure"
    assert workflow_annotations(validate.stdout) == [
        ("error", "requests/bad.jsonl", 2, "invalid_url"),
        ("error", "requests/bad.jsonl", 3, "duplicate_custom_id"),
        ("warning", "requests/bad.jsonl", 4, "blank_line"),
        ("error", "requests/bad.jsonl", 5, "invalid_json_line"),
    ]
    assert "requests/good.jsonl" not in validate.stdout
    assert validate.summary.startswith("### batchkit validate\n")
    assert "- `requests/bad.jsonl: 3 errors, 1 warning" in validate.summary
    assert "- `requests/good.jsonl: ok in 1 request" in validate.summary
    assert run.steps["submit"].outcome == "skipped"
    assert run.outputs["batch_id"] == "" and fake_orq.requests == []


@pytest.mark.slow
def test_strict_decides_whether_warnings_fail(
    runner: Runner, installed: dict[str, Step], workspace: Path
) -> None:
    (workspace / "warned.jsonl").write_bytes(jsonl(request("a"), b"", request("b")))
    strict = runner.run({"files": "warned.jsonl"}, workspace, done=installed)
    assert strict.steps["validate"].outcome == "failure"
    assert workflow_annotations(strict.steps["validate"].stdout) == [
        ("warning", "warned.jsonl", 2, "blank_line")
    ]
    relaxed = runner.run({"files": "warned.jsonl", "strict": "false"}, workspace, done=installed)
    assert relaxed.succeeded, relaxed.steps["validate"].stderr
    assert relaxed.steps["submit"].outcome == "skipped"

    wrong = runner.run({"files": "warned.jsonl", "strict": "yes"}, workspace, done=installed)
    assert "::error title=batchkit::the strict input must be true or false, got 'yes'" in (
        wrong.steps["validate"].stdout
    )


@pytest.mark.slow
def test_submit_exports_the_batch_id(
    runner: Runner, installed: dict[str, Step], workspace: Path, fake_orq: FakeOrq
) -> None:
    fake_orq.state.api_key = SECRET
    path = batch_file(workspace, count=3)
    inputs = {
        "files": path.name,
        "profile": "orq",
        "submit": "true",
        "api-key": SECRET,
        "base-url": fake_orq.url,
    }
    run = runner.run(inputs, workspace, done=installed)
    submit = run.steps["submit"]
    assert run.succeeded, submit.stdout + submit.stderr
    (batch,) = fake_orq.state.batches.values()
    assert run.outputs == {
        "batch_id": batch["id"],
        "file_id": batch["input_file_id"],
        "reused": "false",
        "status": "validating",
    }
    assert f"created batch {batch['id']}" in submit.summary
    assert SECRET not in run.text()

    again = runner.run(inputs, workspace, done=installed)  # a re-run of the workflow
    assert again.outputs["batch_id"] == batch["id"] and again.outputs["reused"] == "true"
    assert len(fake_orq.state.batches) == 1


@pytest.mark.slow
def test_submit_needs_one_file_and_a_key_that_works(
    runner: Runner, installed: dict[str, Step], workspace: Path, fake_orq: FakeOrq
) -> None:
    fake_orq.state.api_key = SECRET
    batch_file(workspace, name="one.jsonl")
    batch_file(workspace, name="two.jsonl")
    inputs = {"files": "one.jsonl two.jsonl", "submit": "true", "base-url": fake_orq.url}
    two = runner.run({**inputs, "api-key": SECRET}, workspace, done=installed)
    assert two.steps["validate"].outcome == "success"
    assert two.steps["submit"].outcome == "failure"
    assert "submit sends one file: the files input names 2" in two.steps["submit"].stdout
    assert fake_orq.requests == []

    refused = runner.run(
        {**inputs, "files": "one.jsonl", "api-key": "sk-wrong"}, workspace, done=installed
    )
    assert refused.steps["submit"].outcome == "failure"
    assert refused.outputs["batch_id"] == ""
    assert "sk-wrong" not in refused.text()
