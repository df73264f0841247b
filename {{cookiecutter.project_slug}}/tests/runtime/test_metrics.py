"""The metrics contract: the logged line, its regexes, metrics.jsonl and TensorBoard agree."""

from __future__ import annotations

import json
import logging
import math
import re

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from template_runtime.metrics import (
    MetricNameError,
    MetricsLog,
    metric_definitions,
    metric_line,
    plot_learning_curve,
    read_metrics,
    stat_metric_name,
)


def test_log_returns_the_values_and_every_sink_has_them_unrounded(tmp_path):
    lines = []
    log = MetricsLog(tmp_path / "metrics.jsonl", tmp_path / "tb", ["loss"], echo=lines.append)
    logged = log.log(10, {"loss": 0.123456789, "fps": 1e7})
    log.log(20, {"loss": float("nan"), "fps": 2})
    log.close()
    assert logged == {"loss": 0.123456789, "fps": 1e7}
    assert lines == ["step=10 loss=0.123457 fps=1e+07", "step=20 loss=nan fps=2"]
    assert read_metrics(tmp_path / "metrics.jsonl") == [
        {"step": 10, "loss": 0.123456789, "fps": 1e7},
        {"step": 20, "loss": None, "fps": 2.0},
    ]
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("loss")][0] == (10, pytest.approx(0.123456789))
    assert math.isnan(events.Scalars("loss")[1].value)


def test_the_regexes_read_back_what_the_line_says():
    values = {"episode_reward_mean": -0.5, "fps": 1234.5, "reward": 3.0}
    line = metric_line(7, values)
    for name, regex in metric_definitions(values):
        assert float(re.search(regex, line).group(1)) == pytest.approx({"step": 7, **values}[name])


def test_undeclared_names_are_logged_with_one_warning(tmp_path, caplog):
    log = MetricsLog(tmp_path / "m.jsonl", None, ["a"], echo=lambda line: None)
    with caplog.at_level(logging.WARNING, logger="trainer"):
        log.log(1, {"a": 1, "b": 2})
        log.log(2, {"a": 1, "b": 2})
    assert caplog.text.count("not declared") == 1 and "'b'" in caplog.text
    assert read_metrics(tmp_path / "m.jsonl")[1] == {"step": 2, "a": 1.0, "b": 2.0}


@pytest.mark.parametrize("values", [{"bad name": 1}, {"1st": 1}, {"a": "x"}, {"a": None}])
def test_names_and_values_that_no_regex_could_read_are_refused(tmp_path, values):
    log = MetricsLog(tmp_path / "m.jsonl", None, [], echo=lambda line: None)
    with pytest.raises(MetricNameError):
        log.log(1, values)
    assert not (tmp_path / "m.jsonl").exists()


def test_a_torn_last_line_is_skipped_and_the_curve_is_drawn(tmp_path):
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"step": 1, "episode_reward_mean": 1.0}) + '\n{"step": 2, "ep'
    )
    assert len(read_metrics(tmp_path / "m.jsonl")) == 1
    assert plot_learning_curve(tmp_path / "m.jsonl", tmp_path / "c.png", "t") == tmp_path / "c.png"
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_stat_names_become_metric_names():
    assert stat_metric_name("Ball/Distance from centre") == "stat_Ball_Distance_from_centre"
    assert stat_metric_name("///") == "stat_unnamed"
