"""Check that this Python can run a training job: the last step of the image build, and a slow test.

A missing or broken package should fail `docker build`, not a paid SageMaker job minutes after it
started. The same script runs in tests/test_image.py against a fresh venv built from the same
requirement files, so what the image checks and what CI checks cannot drift apart.

    python docker/smoke_test.py --src src            # any venv holding requirements/training.txt
    python docker/smoke_test.py --src src --image    # inside the image: also the PATH contract
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from pathlib import Path

# template_runtime.fastpath goes first: its import hook lets mlagents_envs import on protobuf 6.
LIBRARY_MODULES = (
    "template_runtime.fastpath",
    "mlagents_envs.environment",
    "gym_unity.envs",
    "tensorflow",
    "sagemaker_training",
)
# sm_train.sh (SDK v3) needs bash, python3 and pip; SDK v2 runs `train`; UNITY_USE_XVFB=1 needs Xvfb.
IMAGE_PROGRAMS = ("bash", "python3", "pip", "train", "Xvfb")


def import_modules(names: list[str]) -> list[str]:
    """Import each module; return one line per failure (all of them, not just the first)."""
    failures = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - any import error is a finding to report
            failures.append(f"import {name}: {type(error).__name__}: {error}")
    return failures


def trainer_modules(src: Path) -> list[str]:
    """The entry points a job may run (template_runtime.entry_point's contract), plus trainer.py."""
    from template_runtime.entry_point import find_entry_points

    names = [Path(name).stem for name in find_entry_points(src)]
    return (["trainer"] if (src / "trainer.py").exists() else []) + names


def missing_programs() -> list[str]:
    """Programs the job contracts need on PATH, and python3 must be this interpreter's venv."""
    failures = [f"{name} is not on PATH" for name in IMAGE_PROGRAMS if shutil.which(name) is None]
    python3 = shutil.which("python3")
    if python3 and Path(python3).parent != Path(sys.executable).parent:
        failures.append(f"python3 on PATH is {python3}, not {sys.executable}: jobs would miss the packages")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="the repository's src/ folder")
    parser.add_argument("--image", action="store_true", help="also check the programs the image provides")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(args.src.resolve()))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep the build log readable
    trainers = trainer_modules(args.src)
    failures = import_modules([*LIBRARY_MODULES, *trainers])
    if args.image:
        failures += missing_programs()
    for failure in failures:
        print(f"smoke test: {failure}", file=sys.stderr)
    if failures:
        return 1
    print(f"smoke test passed: {', '.join([*LIBRARY_MODULES, *trainers])} import with {sys.executable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
