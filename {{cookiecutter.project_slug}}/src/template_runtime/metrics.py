"""Metrics: one contract for what a trainer reports and how the launcher reads it.

A trainer declares the names it reports (``Trainer.metrics``, on top of ``BASE_METRICS``); the
launcher reads those names from the file (without importing it) and turns each into a SageMaker
metric definition with ``metric_regex``, the regex of exactly the line ``metric_line`` prints. So
the console's charts, the job log, ``metrics.jsonl`` and TensorBoard always show the same numbers.
``MetricsLog.log`` does all four at once and returns the values it logged.

The module level is standard library only: the launcher (no TensorFlow, no mlagents) imports it.
TensorBoard event files are written with the ``tensorboard`` package's own writer, which needs no
TensorFlow (its stub is chosen when TensorFlow is not imported already), so the random trainer
reports to TensorBoard as the learning ones do.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

BASE_METRICS = ("episode_reward_mean", "episode_length_mean", "fps")
"""What every trainer reports: the mean return and length of recent episodes, and agent steps/s."""

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
MAX_METRIC_DEFINITIONS = 40  # CreateTrainingJob's limit


class MetricNameError(ValueError):
    """A metric name that cannot appear in a log line the job's regexes read."""


def check_names(names: Iterable[str], where: str) -> tuple[str, ...]:
    """``names`` as a tuple, each a Python identifier (letters, digits, _), without repeats."""
    names = tuple(names)
    bad = [name for name in names if not isinstance(name, str) or not NAME.fullmatch(name)]
    if bad:
        raise MetricNameError(
            f"{where}: metric names must be identifiers (letters, digits, _; not a digit first): {bad}"
        )
    return tuple(dict.fromkeys(names))


def stat_metric_name(stat: str) -> str:
    """A build's custom stat (``Ball/Distance``) as a metric name (``stat_Ball_Distance``)."""
    return "stat_" + (re.sub(r"[^A-Za-z0-9_]+", "_", stat).strip("_") or "unnamed")


def metric_line(step: int, values: Mapping[str, float]) -> str:
    """``step=1200 episode_reward_mean=0.53 fps=231.4``: what the job's metric regexes read."""
    return " ".join([f"step={int(step)}"] + [f"{name}={value:.6g}" for name, value in values.items()])


def metric_regex(name: str) -> str:
    """The regex SageMaker applies to the job's log for ``name``: it must follow the start of the line
    or a space, so ``episode_reward`` never matches inside ``mean_episode_reward``."""
    return rf"(?:^|\s){re.escape(name)}={NUMBER}"


def metric_definitions(names: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(name, regex) pairs for CreateTrainingJob's MetricDefinitions, at most its limit of 40."""
    chosen = check_names(["step", *names], "metric definitions")[:MAX_METRIC_DEFINITIONS]
    return tuple((name, metric_regex(name)) for name in chosen)


class MetricsLog:
    """Print a metric line, append it to ``metrics.jsonl`` and write TensorBoard scalars.

    ``declared`` are the names the trainer declared; another name is still logged everywhere, with
    one warning that the SageMaker console will not chart it until it is declared. ``echo`` prints
    the line (the trainer passes a function that keeps a progress bar intact).
    """

    def __init__(
        self,
        jsonl: Path,
        tensorboard_dir: Path | None,
        declared: Iterable[str],
        echo: Callable[[str], None] = print,
    ):
        self.jsonl, self.tensorboard_dir, self.echo = Path(jsonl), tensorboard_dir, echo
        self.declared = set(check_names(declared, "declared metrics"))
        self._warned: set[str] = set()
        self._writer = None

    def log(self, step: int, values: Mapping[str, float]) -> dict[str, float]:
        names = check_names(values, "log_metrics")
        logged = {name: _number(name, values[name]) for name in names}
        self._warn_undeclared(logged)
        self.echo(metric_line(step, logged))
        record = {"step": int(step), **{k: (v if math.isfinite(v) else None) for k, v in logged.items()}}
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(self.jsonl, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        self._write_scalars(int(step), logged)
        return logged

    def continue_from(self, step: int) -> int:
        """A resumed run continues at ``step``: drop the records logged after it (they are not in the
        checkpoint, so the curve would step back), and tell TensorBoard to drop its own: a SessionLog
        START at ``step + 1`` makes it purge the events of earlier files from that step on. Returns how
        many records were dropped."""
        records = read_metrics(self.jsonl)
        kept = [record for record in records if record.get("step", 0) <= step]
        if len(kept) != len(records):
            partial = self.jsonl.with_name(f".{self.jsonl.name}.partial")
            partial.write_text("".join(json.dumps(record) + "\n" for record in kept), encoding="utf-8")
            os.replace(partial, self.jsonl)
            logging.getLogger("trainer").info(
                "resuming at step %d: dropped %d metric records logged after it",
                step,
                len(records) - len(kept),
            )
        if self.tensorboard_dir is not None and self.tensorboard_dir.is_dir():
            writer = self._event_writer()
            if writer is not None:
                from tensorboard.compat.proto import event_pb2

                start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
                event = event_pb2.Event(wall_time=time.time(), step=int(step) + 1, session_log=start)
                writer.add_event(event)
                writer.flush()
        return len(records) - len(kept)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _warn_undeclared(self, logged: Mapping[str, float]) -> None:
        new = [name for name in logged if name not in self.declared and name not in self._warned]
        if new:
            self._warned.update(new)
            logging.getLogger("trainer").warning(
                "metrics %s are not declared in the trainer's `metrics`: they are logged, but a SageMaker "
                "job's console will not chart them. Add them to the class attribute `metrics`",
                new,
            )

    def _write_scalars(self, step: int, values: Mapping[str, float]) -> None:
        writer = self._event_writer()
        if writer is None:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2

        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in values.items()]
        )
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        writer.flush()

    def _event_writer(self):
        """TensorBoard's event file writer, made on first use (None without TensorBoard)."""
        if self.tensorboard_dir is None:
            return None
        if self._writer is not None:
            return self._writer
        if "tensorflow" not in sys.modules:
            # TensorBoard's writer would import TensorFlow (~10 s) just for file I/O; its own switch,
            # the module tensorboard.compat.notf, makes it use its TensorFlow-free stub instead.
            sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
        try:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:  # TensorBoard not installed: the other three still have every value
            self.tensorboard_dir = None
            logging.getLogger("trainer").warning("tensorboard is not installed: no TensorBoard event files")
            return None
        self.tensorboard_dir.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(self.tensorboard_dir))
        return self._writer


def _number(name: str, value: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MetricNameError(f"log_metrics: {name}={value!r} is not a number") from None


def read_metrics(jsonl: Path) -> list[dict]:
    """The records of a metrics.jsonl file (a torn last line from a killed run is skipped)."""
    records = []
    if Path(jsonl).is_file():
        for line in Path(jsonl).read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def plot_learning_curve(
    metrics_file: Path, png: Path, title: str, metric: str = "episode_reward_mean"
) -> Path | None:
    """Plot ``metric`` against step from a metrics.jsonl file; None if it has no such values yet."""
    points = [
        (record["step"], record[metric])
        for record in read_metrics(metrics_file)
        if isinstance(record.get(metric), int | float)
    ]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display in a job or CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4))
    axes.plot(*zip(*points, strict=True))
    axes.set(xlabel="step", ylabel=metric, title=title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return Path(png)
