"""Check that this Python can run a training job: the last step of the image build, and a slow test.

A missing or broken package should fail `docker build`, not a paid SageMaker job minutes after it
started. The same script runs in tests/image/test_image_files.py against a fresh venv installed from the same
lock, and in tests/image/ inside the built image with the job's src/ mounted, so what the image
checks and what CI checks cannot drift apart.

    python docker/smoke_test.py --image              # the image build: libraries and PATH contract
    python docker/smoke_test.py --src src            # any venv holding the training lock + src/
    python docker/smoke_test.py --src src --image    # inside the image with a job's code: both

The image is built without src/ (every job uploads it), so without --src only the libraries that
import on their own are imported; mlagents_envs needs src/'s protobuf import hook first, so then
its installation is checked instead.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import shutil
import sys
from pathlib import Path

# The protobuf import hook that lets mlagents_envs import on protobuf 6 (in src/, the job's code).
FASTPATH_MODULES = ("template_runtime.fastpath",)
# Need the hook imported first.
MLAGENTS_MODULES = ("mlagents_envs.environment", "gym_unity.envs")
# Import on their own.
LIBRARY_MODULES = (
    "tensorflow",
    "sagemaker_training",
    "gym",
    "gymnasium",
    "numpy",
    "PIL",
    "boto3",
    "matplotlib",
    "tensorboard",
    "onnx",  # every job writes a Unity-ready model/<behaviour>.onnx (template_runtime.onnx_export)
    "onnxruntime",  # ... and runs it once to check it (template_runtime.onnx_check)
)
# src/'s own modules that import those libraries: only with --src (the image has no src/).
SRC_MODULES = ("template_runtime.onnx_export", "template_runtime.onnx_check")
INSTALLED_DISTRIBUTIONS = ("mlagents-envs", "gym-unity")
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


def fastpath_module(src: Path) -> str | None:
    for name in FASTPATH_MODULES:
        if src.joinpath(*name.split(".")).with_suffix(".py").is_file():
            return name
    return None


def missing_distributions() -> list[str]:
    failures = []
    for name in INSTALLED_DISTRIBUTIONS:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            failures.append(f"{name} is not installed")
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
    parser.add_argument("--src", type=Path, help="the repository's src/ folder (a job's code)")
    parser.add_argument("--image", action="store_true", help="also check the programs the image provides")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep the build log readable
    if args.src:
        sys.path.insert(0, str(args.src.resolve()))
        fastpath = fastpath_module(args.src)
        modules = [*([fastpath] if fastpath else []), *MLAGENTS_MODULES, *LIBRARY_MODULES, *SRC_MODULES]
        modules += trainer_modules(args.src)
        failures = import_modules(modules)
    else:
        modules = list(LIBRARY_MODULES)
        failures = import_modules(modules) + missing_distributions()
    if args.image:
        failures += missing_programs()
    for failure in failures:
        print(f"smoke test: {failure}", file=sys.stderr)
    if failures:
        return 1
    print(f"smoke test passed: {', '.join(modules)} import with {sys.executable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
