"""How long `python src/<trainer>.py --help` takes, beside how long importing TensorFlow alone takes.

The trainers answer --help, a typo'd key and --version before they import TensorFlow
(template_runtime/cli.py answer_early), so the help comes back in well under a second while a run
still pays TensorFlow's import once. This prints the median of a few runs of each, side by side, in
one run on this machine (a benchmark, not a timed test: the figure depends on the machine and its load).

    python benchmarks/bench_cli.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TENSORFLOW_IMPORT = [sys.executable, "-c", "import tensorflow"]


def seconds(command: list[str], repeats: int) -> float:
    """Median wall time of ``command`` (it must succeed)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def trainers() -> list[Path]:
    """Every example trainer this repository has (the algorithm chosen at rendering decides)."""
    names = ("random_trainer.py", "ppo_trainer.py", "tf_trainer.py")
    return [ROOT / "src" / name for name in names if (ROOT / "src" / name).is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command (the median is shown)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: give at least 1")

    baseline = seconds(TENSORFLOW_IMPORT, args.repeats)
    print(f"{'command':<40} {'median s':>9} {'vs import tensorflow':>21}")
    label = 'python -c "import tensorflow"'
    print(f"{label:<40} {baseline:>9.2f} {1.0:>20.2f}x")
    for script in trainers():
        help_time = seconds([sys.executable, str(script), "--help"], args.repeats)
        label = f"python src/{script.name} --help"
        print(f"{label:<40} {help_time:>9.2f} {help_time / baseline:>20.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
