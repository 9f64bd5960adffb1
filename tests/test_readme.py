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


def test_every_test_the_porting_table_names_exists() -> None:
    text = README.read_text()
    table = text[text.index("## Porting from `socket`"):text.index("## API")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) >= 10
    tests = Path(__file__).resolve().parent
    for row in rows:
        named = row.rsplit("|", 2)[-2]
        files = re.findall(r"`(test_\w+\.py)", named)
        functions = re.findall(r"`(test_\w+)`|::(test_\w+)", named)
        assert files, row
        sources = "".join((tests / name).read_text() for name in files)
        for function in (a or b for a, b in functions):
            assert f"def {function}(" in sources, (function, row)
        for quoted in re.findall(r'"([^"]+?)(?: …)?"', named):  # parity rows by name
            assert f'row("{quoted}' in sources, (quoted, row)
