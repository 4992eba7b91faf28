"""The README's "Getting the results" section: its Python example runs as written.

The example is taken from the README itself (the first Python block of that section), so
the test fails when the README drifts from the library.  Only the batch id is changed, to the
id of a batch the fake orq server has just finished.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import CHAT, REPO, jsonl, request
from tests.servers.cli import clean_env
from tests.servers.fake_orq import FakeOrq
from tests.test_client import SECRET, make_client

README_BATCH_ID = "batch_0000024760cc"


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Getting the results", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the section has no Python example"
    return str(blocks[0])


def test_the_python_example_gives_the_answers_in_input_order(
    fake_orq: FakeOrq, tmp_path: Path
) -> None:
    fake_orq.state.api_key = SECRET
    fake_orq.state.result_order = "reversed"
    requests_file = tmp_path / "requests.jsonl"
    requests_file.write_bytes(jsonl(request("first"), request("second"), request("third")))
    with make_client(fake_orq) as client:
        uploaded = client.upload_file(requests_file)
        batch_id = client.create_batch(uploaded.id, CHAT).id
    fake_orq.state.end_batch(batch_id, "completed", {"second": "expired"})
    code = readme_example()
    assert README_BATCH_ID in code
    done = subprocess.run(
        [sys.executable, "-c", code.replace(README_BATCH_ID, batch_id)],
        cwd=tmp_path,
        env=clean_env(ORQ_API_KEY=SECRET, BATCHKIT_BASE_URL=fake_orq.url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts, answers = done.stdout.splitlines()
    assert counts == str({"succeeded": 2, "failed": 0, "expired": 1, "cancelled": 0, "missing": 0})
    assert answers == str(["answer to first", None, "answer to third"])
    assert (tmp_path / "out" / "retry.jsonl").read_bytes() == jsonl(request("second"))
