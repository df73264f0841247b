"""Tuning choices: ranges checked against the entry point's keys and types, strategies, limits, [tuning].

Everything here is offline; the command-line cases run launch.py's main with a closed endpoint, so
a request that slipped through would fail rather than reach anything.
"""

from __future__ import annotations

import pytest
from conftest import make_project
from test_dry_run import dead_endpoint  # noqa: F401  (fixture)

from launcher import cli, tuning, tuning_ranges
from launcher import settings as settings_module
from launcher.entry_points import load_entry_point
from launcher.errors import LaunchError
from launcher.project import SOURCE_DIR
from launcher.settings import resolve

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
ENTRY = load_entry_point("random_trainer.py", SOURCE_DIR)


@pytest.fixture(autouse=True)
def outside_sagemaker(monkeypatch, tmp_path):
    monkeypatch.setattr(settings_module, "SAGEMAKER_METADATA", tmp_path / "no-such-metadata.json")


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path, ROLE, create_bucket=False)


def settings(project, **values):
    return resolve(project_file=str(project.file), role=ROLE, **values)


def with_table(project, text: str):
    project.file.write_text(project.file.read_text() + "\n" + text, encoding="utf-8")
    return project


# ---------------------------------------------------------------------------------------------- ranges


def test_an_int_key_gets_an_integer_range():
    found = tuning_ranges.parse_range("window=10:100", ENTRY)
    assert found.as_request() == {
        "Name": "window",
        "MinValue": "10",
        "MaxValue": "100",
        "ScalingType": "Auto",
    }


def test_a_float_key_gets_a_continuous_range_with_its_scaling():
    found = tuning_ranges.parse_range("time_scale=1:20:log", ENTRY)
    assert (found.kind, found.min_value, found.max_value, found.scaling) == (
        "Continuous",
        "1.0",
        "20.0",
        "Logarithmic",
    )


def test_categorical_values_are_sent_as_the_json_the_job_decodes():
    assert tuning_ranges.parse_range("seed=0,1,2", ENTRY).values == ("0", "1", "2")
    assert tuning_ranges.parse_range("use_visual=true,false", ENTRY).values == ("true", "false")
    assert tuning_ranges.parse_range("env_file=3DBall,Other", ENTRY).values == ('"3DBall"', '"Other"')


def test_toml_lists_and_tables_are_ranges_too():
    assert tuning_ranges.range_from_value("seed", [3, 4], ENTRY, "t").values == ("3", "4")
    table = tuning_ranges.range_from_value(
        "time_scale", {"min": 1, "max": 5, "scaling": "linear"}, ENTRY, "t"
    )
    assert (table.min_value, table.max_value, table.scaling) == ("1.0", "5.0", "Linear")


BAD_RANGES = [
    ("episdoes=1:5", "'episdoes' is not a config key of random_trainer.py"),
    ("episodes", "expected KEY=LOW:HIGH[:log] or KEY=A,B,C"),
    ("episodes=", "expected KEY=LOW:HIGH[:log] or KEY=A,B,C"),
    ("episodes=5:1", "LOW must be less than HIGH"),
    ("episodes=3:3", "LOW must be less than HIGH"),
    ("episodes=1:2:3:4", "one or two colons"),
    ("episodes=1.5:4", "episodes='1.5' is not a whole number"),
    ("episodes=a:b", "episodes='a' is not a whole number"),
    ("seed=0:10:log", "a logarithmic range needs LOW > 0"),
    ("time_scale=0:10:log", "time_scale='0' must be positive"),  # the key's own rule comes first
    ("time_scale=1:10:cubic", "unknown scaling 'cubic'"),
    ("time_scale=0.1:inf", "time_scale='inf' is not a finite number"),
    ("window=1:9:reverselog", "a reverse-logarithmic range is for a float key"),
    ("use_visual=0:1", "use_visual is true or false"),
    ("env_file=1:2", "env_file is text"),
    ("additional_args=a,b", "additional_args is a list"),
    ("seed=4", "at least two values"),
    ("seed=1,,2", "at least two values, none empty"),
    ("seed=1,1", "a value is listed twice"),
    ("seed=1,x", "seed='x' is not a whole number"),
    ("use_visual=true,maybe", "use_visual='maybe' is not true or false"),
    ("seed=" + ",".join(map(str, range(31))), "SageMaker takes at most 30"),
    ("sagemaker_program=a,b", "a name SageMaker reserves"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RANGES, ids=[t for t, _ in BAD_RANGES])
def test_every_bad_range_is_refused_naming_it(text, message):
    with pytest.raises(LaunchError) as refused:
        tuning_ranges.parse_range(text, ENTRY)
    assert str(refused.value).startswith("--range ") and text.split("=")[0] in str(refused.value)
    assert message in str(refused.value)


@pytest.mark.parametrize(("text", "message"), BAD_RANGES, ids=[t for t, _ in BAD_RANGES])
def test_launch_py_refuses_every_bad_range_before_any_request(dead_endpoint, capsys, text, message):  # noqa: F811
    code = cli.main(
        ["--project-file", str(dead_endpoint.file), "--set", f"role={dead_endpoint.role}"]
        + ["--tune", "--range", text, "--dry-run"]
    )
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and text.split("=")[0] in err, err


def test_a_bad_range_in_project_toml_names_the_file_and_table(project):
    with_table(project, '[tuning.ranges]\nepisodes = "9:2"\n')
    with pytest.raises(LaunchError, match=r"project.toml \[tuning.ranges\] episodes=9:2: LOW must be less"):
        tuning.load_tuning(settings(project))


# ---------------------------------------------------------------------------------------------- tuning


def test_defaults_are_bayesian_maximising_the_mean_reward(project):
    found = tuning.load_tuning(settings(project), ranges={"window": "10:100"})
    assert (
        found.strategy,
        found.objective,
        found.objective_type,
        found.max_jobs,
        found.max_parallel_jobs,
    ) == (
        "Bayesian",
        "episode_reward_mean",
        "Maximize",
        4,
        2,
    )


def test_project_toml_gives_defaults_and_choices_override_them(project):
    with_table(
        project,
        '[tuning]\nstrategy = "Random"\nmax_jobs = 6\nobjective = "episode_length_mean"\n'
        '[tuning.ranges]\nwindow = "5:50"\nseed = [0, 1]\n',
    )
    found = tuning.load_tuning(settings(project), ranges={"window": "7:9"}, max_jobs=3)
    assert (found.strategy, found.max_jobs, found.objective) == ("Random", 3, "episode_length_mean")
    assert {r.name: r.describe() for r in found.ranges} == {
        "window": "window in [7, 9] (integer)",
        "seed": "seed in {0, 1}",
    }


def test_seeds_make_a_grid_of_one_setting_starting_at_its_seed(project):
    found = tuning.load_tuning(settings(project, hyperparameters={"seed": 5}), seeds=3)
    assert (found.strategy, found.max_jobs, found.ranges[0].values) == ("Grid", 3, ("5", "6", "7"))


def test_grid_runs_every_combination_once(project):
    found = tuning.load_tuning(
        settings(project), ranges={"seed": "0,1,2", "window": "10,20"}, strategy="Grid"
    )
    assert found.max_jobs == 6


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"objective": "reward"}, "objective='reward' is not a metric random_trainer.py reports"),
        ({"objective_type": "Biggest"}, "objective_type='Biggest' must be one of Maximize, Minimize"),
        ({"strategy": "Genetic"}, "strategy='Genetic' must be one of Bayesian, Random, Grid, Hyperband"),
        ({"strategy": "Grid", "ranges": {"window": "1:9"}}, "Grid takes categorical ranges only"),
        ({"strategy": "Grid", "ranges": {"seed": "0,1"}, "max_jobs": 5}, "runs every combination once, 2"),
        ({"max_jobs": 2, "max_parallel_jobs": 3}, "max_parallel_jobs=3 is more than max_jobs=2"),
        ({"max_jobs": 0}, "max_jobs=0 must be a whole number"),
        ({"strategy": "Hyperband"}, "strategy Hyperband needs hyperband_max_resource"),
        (
            {"strategy": "Hyperband", "hyperband_max_resource": 9, "early_stopping": True},
            "Hyperband stops jobs itself",
        ),
        ({"hyperband_max_resource": 9}, "are for strategy Hyperband"),
        ({"seeds": 3, "ranges": {"seed": "0,1"}}, "give one of them"),
        ({"seeds": 1, "ranges": {}}, "seeds=1 must be a whole number from 2"),
        ({"ranges": {}}, "nothing to tune"),
        ({"tuning_job_name": "x" * 33}, "1-32 letters, digits and hyphens"),
        ({"tuning_job_name": "bad_name"}, "1-32 letters, digits and hyphens"),
        ({"speed": 2}, "unknown tuning setting(s) speed"),
    ],
)
def test_bad_tuning_choices_are_refused_naming_them(project, values, message):
    values = {"ranges": {"window": "10:100"}, **values}
    with pytest.raises(LaunchError) as refused:
        tuning.load_tuning(settings(project), **values)
    assert message in str(refused.value)


def test_unknown_key_in_the_tuning_table_is_refused(project):
    with_table(project, "[tuning]\nmax_job = 3\n")
    with pytest.raises(LaunchError, match=r"\[tuning\]: unknown key\(s\) max_job"):
        tuning.load_tuning(settings(project), ranges={"window": "10:100"})


def test_warm_pools_are_not_set_on_tuning_jobs(project):
    with pytest.raises(LaunchError, match="keep_alive_seconds=60 with a tuning job"):
        tuning.load_tuning(settings(project, keep_alive_seconds=60), ranges={"window": "10:100"})


def test_more_parallel_jobs_than_the_usual_limit_is_a_warning(project, capsys):
    found = tuning.load_tuning(
        settings(project), ranges={"window": "10:100"}, max_jobs=40, max_parallel_jobs=12
    )
    assert any("usual limit is 10 parallel training jobs" in w for w in found.warnings)
    assert "warning: max_parallel_jobs=12" in capsys.readouterr().err


def test_the_tuning_job_name_fits_sagemakers_32_characters(project):
    found = tuning.load_tuning(settings(project, base_job_name="a" * 48), ranges={"window": "10:100"})
    assert len(found.name) <= 32 and tuning.TUNING_NAME.fullmatch(found.name)


def test_a_tuned_key_leaves_the_static_hyperparameters(project):
    chosen = settings(project, hyperparameters={"window": 7, "episodes": 3})
    spec = tuning.build_tuning_spec(tuning.load_tuning(chosen, ranges={"window": "10:100"}), ROLE)
    assert "window" not in spec.encoded_static_hyperparameters()
    assert spec.encoded_static_hyperparameters()["episodes"] == "3"


def test_tuning_flags_need_tune(capsys):
    assert cli.main(["--range", "seed=0,1", "--max-jobs", "3"]) == 2
    assert "--range, --max-jobs: only with --tune" in capsys.readouterr().err
