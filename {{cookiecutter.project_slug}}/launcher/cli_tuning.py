"""launch.py's tuning options: ``--tune`` (also with --dry-run or --local-job), --fetch-results TUNING_JOB."""

from __future__ import annotations

import argparse
import contextlib
import sys

from launcher import api, aws, tuning, tuning_results
from launcher.errors import LaunchError
from launcher.settings import Settings

TUNING_ONLY = (
    "ranges",
    "objective",
    "minimize",
    "strategy",
    "max_jobs",
    "max_parallel",
    "seeds",
    "early_stopping",
    "hyperband_min_resource",
    "hyperband_max_resource",
    "tuning_job_name",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "tuning (many jobs at once)",
        "--tune starts a SageMaker hyperparameter tuning job instead of one training job; with --dry-run it "
        "prints the CreateHyperParameterTuningJob request, with --local-job it runs the jobs here. "
        "Defaults come from project.toml's [tuning] table.",
    )
    group.add_argument("--tune", action="store_true", help="start a hyperparameter tuning job")
    group.add_argument(
        "--range",
        dest="ranges",
        action="append",
        default=[],
        metavar="KEY=LOW:HIGH[:log]|KEY=A,B,C",
        help="a tuned config key: numbers (scaling auto, linear, log, reverselog) or values (repeatable)",
    )
    group.add_argument(
        "--objective", metavar="METRIC", help="the metric to optimise (default episode_reward_mean)"
    )
    group.add_argument("--minimize", action="store_true", help="minimise the objective (default: maximise)")
    group.add_argument("--strategy", choices=tuning.STRATEGIES, help="search strategy (default Bayesian)")
    group.add_argument("--max-jobs", type=int, metavar="N", help="training jobs in all (default 4)")
    group.add_argument("--max-parallel", type=int, metavar="N", help="training jobs at once (default 2)")
    group.add_argument(
        "--seeds", type=int, metavar="N", help="run N seeds (seed, seed+1, ...) of each setting"
    )
    group.add_argument(
        "--early-stopping", action="store_true", default=None, help="let SageMaker stop jobs unlikely to win"
    )
    group.add_argument(
        "--hyperband-min-resource", type=int, metavar="N", help="Hyperband: reports before a stop"
    )
    group.add_argument(
        "--hyperband-max-resource", type=int, metavar="N", help="Hyperband: reports in a whole job"
    )
    group.add_argument(
        "--tuning-job-name", metavar="NAME", help="name the tuning job (32 characters at most)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int | None:
    """Handle --tune, or --fetch-results of a tuning job; None: not ours (a training job to fetch)."""
    if args.fetch_results:
        return _fetch(args, settings)
    values = {
        "ranges": tuning.parse_cli_ranges(args.ranges),
        "objective": args.objective,
        "objective_type": "Minimize" if args.minimize else None,
        "strategy": args.strategy,
        "max_jobs": args.max_jobs,
        "max_parallel_jobs": args.max_parallel,
        "seeds": args.seeds,
        "early_stopping": args.early_stopping,
        "hyperband_min_resource": args.hyperband_min_resource,
        "hyperband_max_resource": args.hyperband_max_resource,
        "tuning_job_name": args.tuning_job_name,
    }
    if args.upload_build and args.dry_run:
        raise LaunchError("--upload-build sends the build to S3: leave it out of a --dry-run")
    if args.dry_run:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the JSON alone
            found = tuning.load_tuning(settings, **values)
            print(found.describe())
            request = tuning.dry_run_tuning(found)
        print(api.request_json(request))
        return 0
    found = tuning.load_tuning(settings, **values)
    if args.upload_build:
        api.upload_build(settings, args.upload_build)
    print(found.describe(), flush=True)
    if args.local_job:
        job = tuning.run_local_tuning(
            found, args.container_python or sys.executable, args.work_dir or api.LOCAL_JOBS_DIR
        )
        fetched = _fetch_named(job.name, settings, args.results_dir)
        return 0 if fetched.best else 1
    job = tuning.submit_tuning(found)
    if settings.wait:
        status = tuning.wait_tuning(job)
        if status == "Completed":
            _fetch_named(job.name, settings, args.results_dir)
        return 0 if status == "Completed" else 1
    return 0


def check_tuning_flags(args: argparse.Namespace) -> None:
    """Tuning options without --tune are a mistake worth naming."""
    given = [
        "--range" if name == "ranges" else f"--{name.replace('_', '-')}"
        for name in TUNING_ONLY
        if getattr(args, name) not in (None, False, [])
    ]
    if given and not args.tune:
        raise LaunchError(
            f"{', '.join(given)}: only with --tune (a tuning job); add --tune or leave them out"
        )


def _fetch(args: argparse.Namespace, settings: Settings) -> int | None:
    session = aws.session(settings.region)
    aws.check_credentials(session)
    name = args.fetch_results
    if tuning.describe_tuning_job(session, name) is None and not tuning_results.local_record_uri(
        session, name, settings.bucket
    ):
        return None  # a training job: the caller fetches it
    return 0 if _fetch_named(name, settings, args.results_dir).best else 1


def _fetch_named(name: str, settings: Settings, results_dir):
    return tuning.fetch_tuning_results(
        name, region=settings.region, dest=results_dir or api.RESULTS_DIR, bucket=settings.bucket
    )
