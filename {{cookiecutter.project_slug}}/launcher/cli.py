"""`python launch.py`: the notebook's steps from the command line, with the same settings and defaults.

The one difference: the notebook waits for the job by default (its later cells need the results),
the command line returns once the job is submitted unless given --wait.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from launcher import api, cli_tuning, tensorboard
from launcher.entry_points import load_entry_point
from launcher.errors import JobFailed, LaunchError
from launcher.project import SOURCE_DIR, read_project
from launcher.runtime import runtime_module
from launcher.settings import SETTING_NAMES, parse_assignment, split_assignments

SETTINGS_HELP = f"""
--set KEY=VALUE takes a job setting ({", ".join(n for n in SETTING_NAMES if n != "hyperparameters")})
or a config key of the entry point (a hyperparameter; write hp.KEY=VALUE if a name is both).
"""


def epilog() -> str:
    """The settings, and examples with a hyperparameter of this project's own entry point."""
    example = example_hyperparameter()
    if example is None:  # no readable project.toml or entry point: the examples without one
        entry, hp, tune = "the entry point", "", " --range KEY=LOW:HIGH"
    else:
        entry, hp = f"src/{example[0]}, from project.toml", f" --set {example[1]}={example[2]}"
        tune = f" --range {example[1]}={example[2]},{2 * example[2]}"
    return (
        SETTINGS_HELP
        + f"""Examples (the entry point is {entry}):
  python launch.py --dry-run{hp}
  python launch.py --wait{hp} --set instance_type=ml.c5.4xlarge --set use_spot=true
  python launch.py --local-job --container-python .venv/bin/python --upload-build builds/3DBall.zip{hp}
  python launch.py --fetch-results <job-name>
  python launch.py --tensorboard <job-name> --port 6006
Many jobs at once (a SageMaker hyperparameter tuning job; ranges also from project.toml [tuning]):
  python launch.py --tune{tune} --max-jobs 8
  python launch.py --tune --seeds 4 --dry-run               # 4 seeds of one setting (a grid search)
  python launch.py --tune --local-job --max-jobs 4 --container-python .venv/bin/python
  python launch.py --fetch-results <tuning-job-name>        # table, plots, best model in results/
"""
    )


def example_hyperparameter() -> tuple[str, str, object] | None:
    """(entry point, key, default): the first whole number in the entry point's own config dict."""
    try:
        entry = load_entry_point(read_project().entry_point, SOURCE_DIR)
        own = runtime_module("entry_point").read_entry_point(entry.path).config
    except Exception:  # noqa: BLE001  (help must work whatever state the project is in)
        return None
    for key, value in own.items():
        if isinstance(value, int) and not isinstance(value, bool):
            return entry.name, key, value
    return None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="launch.py",
        description="Start a SageMaker training job for this repository.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="print, as JSON, what the job would run (entry point, hyperparameters, source files, build, "
        "metric definitions) and its CreateTrainingJob request; send nothing",
    )
    mode.add_argument(
        "--local-job",
        action="store_true",
        help="build the job (src/ goes to S3) and run it here the way the container would, without Docker",
    )
    mode.add_argument(
        "--fetch-results",
        metavar="JOB_NAME",
        help="download a finished job's model and output into results/ and plot its learning curve",
    )
    mode.add_argument(
        "--tensorboard",
        metavar="JOB_NAME",
        help="download a job's TensorBoard event files into results/ and start TensorBoard on 127.0.0.1",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("TB_PORT") or tensorboard.DEFAULT_PORT),
        help="--tensorboard: the port on 127.0.0.1 (default: $TB_PORT or 6006, as make tensorboard)",
    )
    p.add_argument("--wait", action="store_true", help="wait for the job to end, streaming its logs")
    p.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_assignment,
        help="a job setting or hyperparameter (repeatable)",
    )
    p.add_argument("--upload-build", metavar="ZIP", help="first upload this local build zip to the build key")
    p.add_argument(
        "--container-python",
        metavar="PYTHON",
        help="--local-job: the training environment's interpreter (default: this one)",
    )
    p.add_argument(
        "--work-dir",
        metavar="DIR",
        help="--local-job: where the job's /opt/ml folders go (default: runs/local-jobs)",
    )
    p.add_argument(
        "--results-dir",
        metavar="DIR",
        help="--fetch-results, --tensorboard: where to put them (default: results)",
    )
    p.add_argument("--project-file", metavar="TOML", help="project.toml to read (default: the repository's)")
    cli_tuning.add_arguments(p)
    return p


def _assignment(text: str) -> tuple[str, str]:
    try:
        return parse_assignment(text)
    except LaunchError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except JobFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except LaunchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    cli_tuning.check_tuning_flags(args)
    values, hyperparameters = _values(args)
    settings = api.load_settings(**values, hyperparameters=hyperparameters)
    if args.tune or args.fetch_results:
        handled = cli_tuning.run(args, settings)
        if handled is not None:
            return handled
    if args.fetch_results:
        found = api.fetch_results(
            args.fetch_results, region=settings.region, dest=args.results_dir, bucket=settings.bucket
        )
        if found is not None and api.plot_learning_curve(found) is not None:
            print(f"learning curve: {found.folder / 'learning_curve.png'}")
        return 0 if found is not None else 1
    if args.tensorboard:
        api.show_tensorboard(
            args.tensorboard, settings.region, args.port, dest=args.results_dir, bucket=settings.bucket
        )
        return 0
    if args.upload_build and args.dry_run:
        raise LaunchError("--upload-build sends the build to S3: leave it out of a --dry-run")
    if args.upload_build:
        api.upload_build(settings, args.upload_build)
    if args.dry_run:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the JSON alone (the SDKs print to it)
            plan = api.dry_run_plan(settings)
        print(api.request_json(plan))
        return 0
    if args.local_job:
        api.run_local_job(settings, container_python=args.container_python, work_dir=args.work_dir)
        return 0
    print(settings.describe(), flush=True)
    job = api.submit(settings)
    if settings.wait:
        return 0 if api.wait(job) == "Completed" else 1
    return 0


def _values(args: argparse.Namespace) -> tuple[dict, dict]:
    """Settings and hyperparameters from --set, sorted out by the entry point's config keys."""
    pairs = args.assignments
    chosen_entry = next((v for k, v in pairs if k == "entry_point"), None)
    project_file = args.project_file or next((v for k, v in pairs if k == "project_file"), None)
    entry = load_entry_point(chosen_entry or read_project(project_file).entry_point, SOURCE_DIR)
    values, hyperparameters = split_assignments(pairs, entry.config)
    values.setdefault("wait", args.wait)
    if args.project_file:
        values["project_file"] = args.project_file
    return values, hyperparameters
