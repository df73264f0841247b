"""After a tuning job: its training jobs side by side, their objective, the best few's learning curves,
and the best job's model, in ``results/<tuning-job>/``:

    jobs.csv                  one row per training job: status, objective, tuned hyperparameters
    objective_per_job.png     the final objective of each job, in the order they started; best marked
    learning_curves.png       the objective over training steps of the best few (their metrics.jsonl,
                              or CloudWatch when a job wrote none; results.py fetches them)
    jobs/<training-job>/      those jobs' model/ and output/, as results.fetch_results leaves them
    best/                     the best job's model: its SavedModel, and any .onnx file, as saved
    best/best_job.json        its name, objective and hyperparameters

SageMaker's answers: DescribeHyperParameterTuningJob and ListTrainingJobsForHyperParameterTuningJob.
A tuning job run with ``--tune --local-job`` has none; its ``local-tuning-job.json`` in the bucket
(local_tuning.py) holds the same two answers.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from launcher import results
from launcher.errors import LaunchError
from launcher.local_tuning import RECORD, best_job

TOP = 3


@dataclass(frozen=True)
class TrainingJobRow:
    name: str
    status: str
    objective: float | None
    hyperparameters: dict  # tuned ones, decoded where they are JSON
    failure: str = ""


@dataclass(frozen=True)
class TuningResults:
    tuning_job_name: str
    status: str
    objective: str
    objective_type: str
    folder: Path
    jobs: list[TrainingJobRow]  # best first; jobs without an objective last
    best: TrainingJobRow | None
    best_dir: Path | None
    curves: dict[str, list[dict]] = field(default_factory=dict)  # job -> metric records
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        keys = sorted({k for job in self.jobs for k in job.hyperparameters})
        header = ["training job", "status", self.objective, *keys]
        rows = [
            [
                job.name + (" *" if self.best and job.name == self.best.name else ""),
                job.status,
                "-" if job.objective is None else f"{job.objective:.6g}",
                *(_shown(job.hyperparameters.get(k, "")) for k in keys),
            ]
            for job in self.jobs
        ]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        return "\n".join(
            "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]
        )


def fetch_tuning_results(
    boto_session, name: str, dest: str | Path, record_uri: str | None = None, top: int = TOP
) -> TuningResults:
    """Everything of tuning job ``name`` into ``dest/<name>/`` (see the module docstring)."""
    description, summaries = (
        _local_record(boto_session, record_uri) if record_uri else _from_sagemaker(boto_session, name)
    )
    objective = description["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    rows = _rows(summaries, objective["Type"])
    named = (description.get("BestTrainingJob") or {}).get("TrainingJobName")
    if named not in {r.name for r in rows}:  # none yet (or not one of the listed jobs)
        named = (best_job(summaries, objective["Type"]) or {}).get("TrainingJobName")
    best = next((r for r in rows if r.name == named), None)
    folder = Path(dest).expanduser() / name
    folder.mkdir(parents=True, exist_ok=True)
    files = {"jobs.csv": _write_csv(folder / "jobs.csv", rows, objective["MetricName"])}
    output_path = description["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"]
    ranked = [r for r in rows if r.objective is not None and r.status == "Completed"][:top]
    fetched = {}
    for row in ranked:
        found = results.fetch_results(
            boto_session, row.name, folder / "jobs", output_path.rstrip("/") if record_uri else None
        )
        if found is not None:
            fetched[row.name] = found
    best_dir = _copy_best(fetched.get(best.name) if best else None, folder, best, objective["MetricName"])
    found = TuningResults(
        tuning_job_name=name,
        status=description.get("HyperParameterTuningJobStatus", "unknown"),
        objective=objective["MetricName"],
        objective_type=objective["Type"],
        folder=folder,
        jobs=rows,
        best=best,
        best_dir=best_dir,
        curves={job: r.metrics for job, r in fetched.items()},
        files=files,
    )
    for name_, path in (
        ("objective_per_job.png", plot_objective(found)),
        ("learning_curves.png", plot_curves(found)),
    ):
        if path is not None:
            files[name_] = path
    print(found.table())
    print(
        f"results of tuning job {name} ({found.status}) in {folder}: {len(rows)} training jobs, best "
        + (
            f"{best.name} ({found.objective}={best.objective:.6g}), its model in {best_dir}"
            if best
            else "none"
        )
    )
    return found


def plot_objective(found: TuningResults) -> Path | None:
    """The final objective of each training job, in the order the jobs were named; best in red."""
    scored = sorted((r for r in found.jobs if r.objective is not None), key=lambda r: r.name)
    if not scored:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4))
    numbers = [_number(r.name) for r in scored]
    axes.bar(numbers, [r.objective for r in scored], color="tab:blue")
    if found.best:
        axes.bar(
            [_number(found.best.name)],
            [found.best.objective],
            color="tab:red",
            label=f"best: {found.best.name}",
        )
        axes.legend()
    axes.set(
        xlabel="training job",
        ylabel=found.objective,
        title=f"{found.tuning_job_name}: final {found.objective}",
    )
    axes.set_xticks(numbers)
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    path = found.folder / "objective_per_job.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_curves(found: TuningResults) -> Path | None:
    """The objective over steps (or time) of the best few jobs."""
    plotted = {
        job: [m for m in records if isinstance(m.get(found.objective), int | float)]
        for job, records in found.curves.items()
    }
    plotted = {job: points for job, points in plotted.items() if points}
    if not plotted:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4))
    for job, points in plotted.items():
        x_name = "step" if all("step" in m for m in points) else "time"
        axes.plot([m[x_name] for m in points], [m[found.objective] for m in points], label=job)
    axes.set(xlabel="step", ylabel=found.objective, title=f"{found.tuning_job_name}: the best {len(plotted)}")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path = found.folder / "learning_curves.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# ----------------------------------------------------------------------------------------------


def _from_sagemaker(boto_session, name: str) -> tuple[dict, list[dict]]:
    from launcher.tuning import describe_tuning_job

    description = describe_tuning_job(boto_session, name)
    if description is None:
        raise LaunchError(f"{name!r}: no such tuning job in {boto_session.region_name}")
    client = boto_session.client("sagemaker")
    summaries = [
        summary
        for page in client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
            HyperParameterTuningJobName=name
        )
        for summary in page.get("TrainingJobSummaries", [])
    ]
    return description, summaries


def _local_record(boto_session, uri: str) -> tuple[dict, list[dict]]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = boto_session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    record = json.loads(body)
    return record["Description"], record["TrainingJobSummaries"]


def local_record_uri(boto_session, name: str, bucket: str) -> str | None:
    """Where a locally run tuning job's record is, if it is in ``bucket``."""
    from botocore.exceptions import ClientError

    try:
        boto_session.client("s3").head_object(Bucket=bucket, Key=f"{name}/{RECORD}")
    except ClientError:
        return None
    return f"s3://{bucket}/{name}/{RECORD}"


def _rows(summaries: list[dict], objective_type: str) -> list[TrainingJobRow]:
    rows = [
        TrainingJobRow(
            name=s["TrainingJobName"],
            status=s.get("TrainingJobStatus", "unknown"),
            objective=(s.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value"),
            hyperparameters={k: _decoded(v) for k, v in (s.get("TunedHyperParameters") or {}).items()},
            failure=s.get("FailureReason", ""),
        )
        for s in summaries
    ]
    sign = -1 if objective_type == "Maximize" else 1
    return sorted(rows, key=lambda r: (r.objective is None, sign * (r.objective or 0), r.name))


def _write_csv(path: Path, rows: list[TrainingJobRow], objective: str) -> Path:
    keys = sorted({k for row in rows for k in row.hyperparameters})
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["training_job", "status", objective, *keys, "failure_reason"])
        for row in rows:
            writer.writerow(
                [row.name, row.status, "" if row.objective is None else row.objective]
                + [json.dumps(row.hyperparameters[k]) if k in row.hyperparameters else "" for k in keys]
                + [row.failure]
            )
    return path


def _copy_best(found, folder: Path, best: TrainingJobRow | None, objective: str) -> Path | None:
    """The best job's model folder, copied whole (SavedModel, .onnx, whatever it saved) into best/."""
    if best is None or found is None or found.model_dir is None:
        return None
    target = folder / "best"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(found.model_dir, target)
    saved = sorted(p.parent.relative_to(target).as_posix() for p in target.rglob("saved_model.pb"))
    onnx = sorted(p.relative_to(target).as_posix() for p in target.rglob("*.onnx"))
    (target / "best_job.json").write_text(
        json.dumps(
            {
                "training_job": best.name,
                objective: best.objective,
                "hyperparameters": best.hyperparameters,
                "saved_models": saved,
                "onnx": onnx,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return target


def _decoded(value: str) -> object:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _shown(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _number(job: str) -> int:
    parts = job.rsplit("-", 2)
    return int(parts[-2]) if len(parts) == 3 and parts[-2].isdigit() else 0


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and not _in_notebook():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _in_notebook() -> bool:
    import sys

    return "ipykernel" in sys.modules
