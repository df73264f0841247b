"""benchmarks/bench_cli.py prints the --help time of every trainer beside TensorFlow's import time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_cli.py"


def bench(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(BENCH), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_prints_a_row_per_trainer_beside_the_tensorflow_import():
    result = bench("--repeats", "1", timeout=300)

    assert result.returncode == 0, result.stderr
    rows = dict(re.findall(r"^(python .+?)\s+([\d.]+)\s+[\d.]+x$", result.stdout, flags=re.MULTILINE))
    trainers = sorted(p.name for p in (ROOT / "src").glob("*_trainer.py"))
    assert set(rows) == {'python -c "import tensorflow"'} | {f"python src/{name} --help" for name in trainers}


def test_refuses_zero_repeats():
    result = bench("--repeats", "0", timeout=60)

    assert result.returncode == 2 and "--repeats 0: give at least 1" in result.stderr
