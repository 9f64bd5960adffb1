"""Every Python example in the README runs, on both implementations."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IMPLEMENTATIONS

from fastsock import _names

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(index: int, implementation: str) -> None:
    env = dict(os.environ, **_names.IMPLEMENTATIONS[implementation][1], PYTHONDEVMODE="1")
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", EXAMPLES[index]],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "an example should show what it did"
