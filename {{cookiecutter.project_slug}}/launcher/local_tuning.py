"""Run a CreateHyperParameterTuningJob request here, the way SageMaker would, without Docker.

For ``--tune --local-job``: the SDK's tuner builds the request and uploads src/ (tuning.py), then
this module plays SageMaker's part:

1. picks the hyperparameters of each training job: every combination once for Grid, otherwise
   ``MaxNumberOfTrainingJobs`` random draws from the ranges (each range's scaling respected; Bayesian
   search and Hyperband's early stopping are SageMaker's own and are not reproduced: here both
   sample like Random, and every job runs to its end);
2. names the training jobs as SageMaker does (``<tuning-job>-<NNN>-<8 hex>``) and turns the
   definition into each job's CreateTrainingJob request: the static hyperparameters, the tuned ones
   as text (``"0.00031"``, ``"3"``, a categorical value as listed) and ``_tuning_objective_metric``
   (which SageMaker adds and sagemaker-training keeps from the script);
3. runs them through container.py's real driver, at most ``MaxParallelTrainingJobs`` at a time;
4. reads each job's objective from its log with the objective's regex from MetricDefinitions, the
   last value printed counting (SageMaker's FinalHyperParameterTuningJobObjectiveMetric is "the
   latest objective metric emitted"), and picks the best job;
5. writes ``s3://<output path>/<tuning-job>/local-tuning-job.json``: the DescribeHyperParameter-
   TuningJob answer and the ListTrainingJobsForHyperParameterTuningJob summaries SageMaker would
   give, so ``--fetch-results <tuning-job>`` works on a tuning job that only ran here.

Differences from SageMaker, all from the jobs sharing one machine here: each job's checkpoints go
to ``<CheckpointConfig.S3Uri>/<training-job>/`` (see tuning.py), and jobs running side by side get
worker ids 100 apart, so their Unity players never compete for a port (``own_ports``).
"""

from __future__ import annotations

import itertools
import json
import math
import queue
import random
import re
import secrets
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from launcher import container
from launcher.errors import JobFailed, LaunchError

TUNING_METRIC_HYPERPARAMETER = "_tuning_objective_metric"
WORKER_ID_SPACING = 100  # worker ids (ports) kept apart per parallel job (see own_ports)
RECORD = "local-tuning-job.json"


@dataclass(frozen=True)
class LocalTuningResult:
    name: str
    summaries: list[dict]  # HyperParameterTrainingJobSummary, one per training job
    best: dict | None
    record_uri: str
    work_dir: Path


def run_tuning_request(
    request: dict,
    *,
    boto_session,
    container_python,
    work_dir,
    echo: TextIO | None = sys.stdout,
    seed: int | None = None,
) -> LocalTuningResult:
    """Run every training job of ``request`` here; returns the summaries SageMaker would list."""
    name = request["HyperParameterTuningJobName"]
    config, definition = request["HyperParameterTuningJobConfig"], request["TrainingJobDefinition"]
    objective = config["HyperParameterTuningJobObjective"]
    regex = _objective_regex(definition, objective["MetricName"])
    folder = Path(work_dir).resolve() / name
    if folder.exists():
        raise LaunchError(f"{folder} already exists: a local tuning job of that name ran here; remove it")
    folder.mkdir(parents=True)
    draws = hyperparameter_sets(config, random.Random(config.get("RandomSeed", seed)))
    jobs = [(f"{name}-{i:03d}-{secrets.token_hex(4)}", tuned) for i, tuned in enumerate(draws, 1)]
    created = datetime.now(UTC)
    out = _Prefixed(echo)
    if echo is not None:
        print(
            f"{name}: {len(jobs)} training jobs, "
            f"{config['ResourceLimits']['MaxParallelTrainingJobs']} at a time"
            f" ({config['Strategy']}{' sampled at random here' if config['Strategy'] != 'Grid' else ''})",
            file=echo,
            flush=True,
        )

    # boto3 sessions are not thread-safe: every job gets its own, made here in the calling thread.
    sessions = {job: _session_like(boto_session) for job, _ in jobs}

    parallel = config["ResourceLimits"]["MaxParallelTrainingJobs"]
    slots: queue.SimpleQueue[int] = queue.SimpleQueue()
    for slot in range(parallel):
        slots.put(slot)

    def run(job: str, tuned: dict) -> dict:
        slot = slots.get()
        try:
            return run_in_slot(job, tuned, slot)
        finally:
            slots.put(slot)

    def run_in_slot(job: str, tuned: dict, slot: int) -> dict:
        training = own_ports(training_request(request, job, tuned), slot)
        started, failure = datetime.now(UTC), None
        try:
            result = container.run_training_request(
                training,
                boto_session=sessions[job],
                container_python=container_python,
                work_dir=folder,
                echo=out.for_job(job) if echo is not None else None,
            )
            log = result.log_file
        except JobFailed as error:
            failure, log = str(error).splitlines()[0], folder / job / "local-job.log"
        value = last_value(regex, log.read_text(errors="replace") if log.is_file() else "")
        summary = {
            "TrainingJobName": job,
            "TrainingJobArn": f"arn:aws:sagemaker:{boto_session.region_name}:000000000000:training-job/{job}",
            "TuningJobName": name,
            "CreationTime": started.isoformat(),
            "TrainingStartTime": started.isoformat(),
            "TrainingEndTime": datetime.now(UTC).isoformat(),
            "TrainingJobStatus": "Failed" if failure else "Completed",
            "TunedHyperParameters": tuned,
            "ObjectiveStatus": "Succeeded" if value is not None and not failure else "Failed",
        }
        if failure:
            summary["FailureReason"] = failure
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": objective["Type"],
                "MetricName": objective["MetricName"],
                "Value": value,
            }
        if echo is not None:
            shown = f"{objective['MetricName']}={value:.6g}" if value is not None else "no objective"
            print(f"{job}: {summary['TrainingJobStatus']}, {shown}", file=echo, flush=True)
        return summary

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="tuning-job") as pool:
        summaries = list(pool.map(lambda item: run(*item), jobs))
    best = best_job(summaries, objective["Type"])
    record_uri = f"{definition['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/{RECORD}"
    description = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobStatus": "Completed",
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": definition,
        "CreationTime": created.isoformat(),
        "HyperParameterTuningEndTime": datetime.now(UTC).isoformat(),
        "TrainingJobStatusCounters": _counters(summaries),
        **({"BestTrainingJob": best} if best else {}),
    }
    bucket, _, key = record_uri.removeprefix("s3://").partition("/")
    boto_session.client("s3").put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps({"Description": description, "TrainingJobSummaries": summaries}, indent=2).encode(),
        ContentType="application/json",
    )
    if echo is not None:
        print(
            f"local tuning job {name} finished: best {best['TrainingJobName'] if best else 'none'}"
            + (
                f" ({objective['MetricName']}="
                f"{best['FinalHyperParameterTuningJobObjectiveMetric']['Value']:.6g})"
                if best
                else ""
            )
            + f"; record {record_uri}",
            file=echo,
            flush=True,
        )
    return LocalTuningResult(name, summaries, best, record_uri, folder)


def training_request(request: dict, job_name: str, tuned: dict[str, str]) -> dict:
    """The CreateTrainingJob request SageMaker makes for one training job of a tuning job."""
    definition = request["TrainingJobDefinition"]
    objective = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    spec = definition["AlgorithmSpecification"]
    resources = definition.get("ResourceConfig") or definition["HyperParameterTuningResourceConfig"]
    training = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            key: spec[key]
            for key in ("TrainingImage", "TrainingInputMode", "MetricDefinitions")
            if key in spec
        },
        "RoleArn": definition["RoleArn"],
        "HyperParameters": {
            **definition.get("StaticHyperParameters", {}),
            **tuned,
            TUNING_METRIC_HYPERPARAMETER: objective["MetricName"],
        },
        "InputDataConfig": definition.get("InputDataConfig", []),
        "OutputDataConfig": definition["OutputDataConfig"],
        "ResourceConfig": {
            key: resources[key]
            for key in ("InstanceType", "InstanceCount", "VolumeSizeInGB")
            if key in resources
        },
        "StoppingCondition": definition["StoppingCondition"],
        "EnableManagedSpotTraining": definition.get("EnableManagedSpotTraining", False),
        "Environment": definition.get("Environment", {}),
    }
    checkpoint = definition.get("CheckpointConfig")
    if checkpoint:
        training["CheckpointConfig"] = {
            **checkpoint,
            "S3Uri": f"{checkpoint['S3Uri'].rstrip('/')}/{job_name}/",
        }
    return training


def own_ports(training: dict, slot: int) -> dict:
    """Jobs running side by side here share one machine, unlike SageMaker's instances: the job in
    parallel slot N gets worker_id + N * WORKER_ID_SPACING, so its Unity players' ports (5005 +
    worker_id) never meet another job's. (The trainer's own busy-port fallback is not enough for
    jobs that start in the same instant: a port checked free can be taken before it is bound.)"""
    if slot == 0:
        return training
    hyperparameters = training["HyperParameters"]
    try:
        base = json.loads(hyperparameters.get("worker_id", "0"))
    except ValueError:
        return training
    if not isinstance(base, int) or isinstance(base, bool):
        return training
    hyperparameters["worker_id"] = json.dumps(base + slot * WORKER_ID_SPACING)
    return training


def hyperparameter_sets(config: dict, rng: random.Random) -> list[dict[str, str]]:
    """The tuned hyperparameters of each training job, as text (the way SageMaker passes them)."""
    ranges = config.get("ParameterRanges") or {}
    categorical = ranges.get("CategoricalParameterRanges") or []
    numeric = [("Integer", r) for r in ranges.get("IntegerParameterRanges") or []]
    numeric += [("Continuous", r) for r in ranges.get("ContinuousParameterRanges") or []]
    count = config["ResourceLimits"].get("MaxNumberOfTrainingJobs")
    if config["Strategy"] == "Grid":
        names = [r["Name"] for r in categorical]
        return [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(r["Values"] for r in categorical))
        ]
    if not numeric:  # categorical only: distinct combinations first, like a sensible search would
        names = [r["Name"] for r in categorical]
        every = [
            dict(zip(names, v, strict=True)) for v in itertools.product(*(r["Values"] for r in categorical))
        ]
        rng.shuffle(every)
        return (every * math.ceil(count / len(every)))[:count]
    draws = []
    for _ in range(count):
        tuned = {r["Name"]: rng.choice(r["Values"]) for r in categorical}
        for kind, r in numeric:
            tuned[r["Name"]] = _draw(kind, r, rng)
        draws.append(tuned)
    return draws


def last_value(regex: str, log: str) -> float | None:
    """The objective's last value in the log (a line at a time, as SageMaker reads it)."""
    pattern, value = re.compile(regex), None
    for line in log.splitlines():
        for match in pattern.finditer(line):
            try:
                number = float(match.group(1))
            except (IndexError, ValueError):
                continue
            if math.isfinite(number):
                value = number
    return value


def best_job(summaries: list[dict], objective_type: str) -> dict | None:
    scored = [
        s
        for s in summaries
        if s.get("TrainingJobStatus") == "Completed" and "FinalHyperParameterTuningJobObjectiveMetric" in s
    ]
    if not scored:
        return None
    pick = max if objective_type == "Maximize" else min
    return pick(scored, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])


def _objective_regex(definition: dict, metric: str) -> str:
    for item in definition["AlgorithmSpecification"].get("MetricDefinitions", []):
        if item["Name"] == metric:
            return item["Regex"]
    raise LaunchError(f"the request has no metric definition for its objective {metric!r}")


def _draw(kind: str, r: dict, rng: random.Random) -> str:
    low, high, scaling = float(r["MinValue"]), float(r["MaxValue"]), r.get("ScalingType", "Auto")
    if scaling == "Logarithmic":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif scaling == "ReverseLogarithmic":
        value = 1 - math.exp(rng.uniform(math.log(1 - high), math.log(1 - low)))
    else:
        value = rng.uniform(low, high)
    if kind == "Integer":
        return str(min(int(high), max(int(low), round(value))))
    return repr(value)


def _session_like(boto_session):
    import boto3

    return boto3.Session(region_name=boto_session.region_name)


def _counters(summaries: list[dict]) -> dict:
    completed = sum(1 for s in summaries if s["TrainingJobStatus"] == "Completed")
    return {
        "Completed": completed,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": len(summaries) - completed,
        "Stopped": 0,
    }


class _Prefixed:
    """Echo each job's log lines with its number, whole lines at a time, from several threads."""

    def __init__(self, echo: TextIO | None):
        self.echo, self.lock = echo, threading.Lock()

    def for_job(self, job: str):
        number = job.rsplit("-", 2)[-2]
        outer = self

        class Stream:
            def write(self, text: str) -> None:
                with outer.lock:
                    for line in text.splitlines(keepends=True):
                        outer.echo.write(f"[{number}] {line}")

            def flush(self) -> None:
                with outer.lock:
                    outer.echo.flush()

        return Stream()
