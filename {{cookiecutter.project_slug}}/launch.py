"""Start a SageMaker training job for this repository (job_launcher.ipynb calls the same functions).

    python launch.py [--dry-run] [--wait] [--local-job] [--set KEY=VALUE ...]   # --help for the rest
    python launch.py --tune --range KEY=LOW:HIGH [--dry-run | --local-job]     # a tuning job

Defaults come from project.toml (bucket, region, image, Unity build, instance type, entry point);
the code lives in launcher/. Install the launcher's requirements first (not the training ones):
    pip install -r requirements/launcher.txt      # SageMaker SDK v3; launcher-v2.txt for SDK v2
"""

from __future__ import annotations

import sys

if sys.version_info < (3, 11):  # noqa: UP036  (tomllib; a notebook kernel may well be older)
    sys.exit(
        f"launch.py needs Python 3.11 or newer (this is {sys.version.split()[0]}): use the rl-launcher "
        "kernel "
        "or a venv with requirements/launcher.txt"
    )

from launcher.api import (  # noqa: E402
    SubmittedJob,
    attach,
    describe_job,
    dry_run,
    dry_run_plan,
    fetch_results,
    load_saved_model,
    load_settings,
    plot_learning_curve,
    request_json,
    run_local_job,
    submit,
    unity_instructions,
    upload_build,
    wait,
)
from launcher.errors import LaunchError  # noqa: E402
from launcher.settings import JobSettings  # noqa: E402
from launcher.tuning import (  # noqa: E402
    TuningSettings,
    attach_tuning,
    dry_run_tuning,
    fetch_tuning_results,
    load_tuning,
    run_local_tuning,
    submit_tuning,
    wait_tuning,
)

__all__ = [
    "JobSettings",
    "LaunchError",
    "SubmittedJob",
    "TuningSettings",
    "attach",
    "attach_tuning",
    "describe_job",
    "dry_run",
    "dry_run_plan",
    "dry_run_tuning",
    "fetch_results",
    "fetch_tuning_results",
    "load_saved_model",
    "load_settings",
    "load_tuning",
    "plot_learning_curve",
    "request_json",
    "run_local_job",
    "run_local_tuning",
    "submit",
    "unity_instructions",
    "submit_tuning",
    "upload_build",
    "wait",
    "wait_tuning",
]

if __name__ == "__main__":
    from launcher.cli import main

    sys.exit(main())
