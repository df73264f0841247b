"""The SageMaker contract: config layers and types, mode selection, output folders, metric lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import trainer as trainer_module
from template_runtime.project_file import TEMPLATE_MARKER
from trainer import DEFAULT_CONFIG, ConfigError, LocalTrainer, Trainer, merge_config, parse_cli

pytestmark = pytest.mark.usefixtures("no_internet")

SEED_KEYS = [
    "bucket",
    "zip_env_name",
    "build_folder",
    "env_file",
    "worker_id",
    "use_visual",
    "use_uint8_visual",
    "multiagent",
    "flatten_branched",
    "allow_multiple_visual_obs",
    "no_graphics",
]
SCRIPT_CONFIG = {"episodes": 10, "learning_rate": 3e-4, "use_visual": False, "project_file": ""}


class Probe(Trainer):
    def run(self):
        return self.config


@pytest.fixture
def job(tmp_path, monkeypatch) -> Path:
    """Inside a (simulated) training container: SM_* variables point at temporary folders."""
    root = tmp_path / "opt_ml"
    for name, sub in {"SM_MODEL_DIR": "model", "SM_OUTPUT_DATA_DIR": "output/data"}.items():
        (root / sub).mkdir(parents=True)
        monkeypatch.setenv(name, str(root / sub))
    monkeypatch.setenv("SM_TRAINING_ENV", json.dumps({"job_name": "test"}))
    monkeypatch.delenv("SM_HPS", raising=False)
    monkeypatch.setattr(trainer_module, "SAGEMAKER_CHECKPOINT_DIR", root / "checkpoints")
    return root


@pytest.fixture
def outside_job(monkeypatch):
    for name in ("SM_TRAINING_ENV", "SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_HPS"):
        monkeypatch.delenv(name, raising=False)


# ---- config layers and types ------------------------------------------------------------------


def test_defaults_hold_every_key_of_the_original_template():
    assert set(SEED_KEYS) <= set(DEFAULT_CONFIG)
    assert DEFAULT_CONFIG["no_graphics"] is True and DEFAULT_CONFIG["worker_id"] == 0


@pytest.mark.usefixtures("job")
def test_command_line_values_take_the_type_of_the_config_value():
    argv = ["--episodes", "3", "--learning_rate", "0.01", "--use_visual", "true", "--no_graphics=False"]
    config = Probe(SCRIPT_CONFIG, argv=argv).config
    assert (config["episodes"], config["learning_rate"], config["use_visual"], config["no_graphics"]) == (
        3,
        0.01,
        True,
        False,
    )
    assert type(config["episodes"]) is int and type(config["learning_rate"]) is float


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("True", True), ("1", True), ("false", False), ("0", False)]
)
def test_bool_hyperparameter_spellings(job, text, expected):
    assert Probe(SCRIPT_CONFIG, argv=["--multiagent", text]).config["multiagent"] is expected


def test_sm_hps_overrides_script_config_and_ignores_sagemaker_keys(job, monkeypatch):
    hps = {
        "episodes": "7",
        "use_visual": True,
        "learning_rate": 1,
        "sagemaker_program": "random_trainer.py",
        "sagemaker_submit_directory": "s3://b/src.tar.gz",
    }
    monkeypatch.setenv("SM_HPS", json.dumps(hps))
    config = Probe(SCRIPT_CONFIG, argv=[]).config
    assert (config["episodes"], config["use_visual"], config["learning_rate"]) == (7, True, 1.0)
    assert type(config["learning_rate"]) is float and "sagemaker_program" not in config


def test_command_line_wins_over_sm_hps_and_sagemaker_args_are_dropped(job, monkeypatch):
    monkeypatch.setenv("SM_HPS", json.dumps({"episodes": 7}))
    argv = ["--sagemaker_program", "random_trainer.py", "--episodes", "9"]
    assert Probe(SCRIPT_CONFIG, argv=argv).config["episodes"] == 9


@pytest.mark.usefixtures("job")
def test_unknown_hyperparameter_is_refused_with_the_known_keys():
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) --epsiodes 3\. Known keys: .*episodes"):
        Probe(SCRIPT_CONFIG, argv=["--epsiodes", "3"])


def test_unknown_sm_hps_key_is_refused(job, monkeypatch):
    monkeypatch.setenv("SM_HPS", json.dumps({"epsiodes": 3}))
    with pytest.raises(ConfigError, match="SM_HPS: unknown key 'epsiodes'. Known keys:"):
        Probe(SCRIPT_CONFIG, argv=[])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--use_visual", "maybe"], r"use_visual='maybe' is not true or false"),
        (["--episodes", "2.5"], r"episodes='2.5' is not a whole number"),
        (["--learning_rate", "fast"], r"learning_rate='fast' is not a number"),
        (["--worker_id", "-1"], r"command line: worker_id='-1' must be 0 or more"),
    ],
)
def test_bad_hyperparameter_value_names_key_and_value(job, argv, message):
    with pytest.raises(ConfigError, match=message):
        Probe(SCRIPT_CONFIG, argv=argv)


def test_list_and_dict_keys_accept_json_on_the_command_line(job):
    argv = ["--additional_args", '["--agents", "4"]', "--env_parameters", '{"gravity": 5}']
    config = Probe(SCRIPT_CONFIG, argv=argv).config
    assert config["additional_args"] == ["--agents", "4"] and config["env_parameters"] == {"gravity": 5}


def test_merge_lets_only_the_script_add_keys():
    merged = merge_config({"a": 1}, {"b": "x"}, ("hps", {"a": "2", "b": 3}))
    assert merged == {"a": 2, "b": "3"}
    with pytest.raises(ConfigError, match="hps: unknown key 'c'"):
        merge_config({"a": 1}, {}, ("hps", {"c": 1}))


def test_parse_cli_reports_the_local_flag():
    values, local = parse_cli(["--local", "--seed", "3"], DEFAULT_CONFIG)
    assert local is True and values == {"seed": "3"}


# ---- project.toml (local runs) ------------------------------------------------------------------

PROJECT_TOML = """
[aws]
s3_bucket = "my-bucket"
[unity_build]
zip_key = "builds/Walker.zip"
folder = "walker_build"
executable = "Walker"
"""


def test_project_toml_build_settings_win_over_script_config_locally(outside_job, tmp_path):
    (tmp_path / "project.toml").write_text(PROJECT_TOML)
    config = Probe({"env_file": "3DBall", "project_file": str(tmp_path / "project.toml")}, argv=[]).config
    assert (config["bucket"], config["zip_env_name"], config["build_folder"], config["env_file"]) == (
        "my-bucket",
        "builds/Walker.zip",
        "walker_build",
        "Walker",
    )


def test_command_line_wins_over_project_toml(outside_job, tmp_path):
    (tmp_path / "project.toml").write_text(PROJECT_TOML)
    config = Probe({"project_file": str(tmp_path / "project.toml")}, argv=["--env_file", "Crawler"]).config
    assert config["env_file"] == "Crawler"


def test_project_toml_is_not_read_inside_a_job(job, tmp_path):
    (tmp_path / "project.toml").write_text(PROJECT_TOML)
    assert (
        Probe({"env_file": "3DBall", "project_file": str(tmp_path / "project.toml")}, argv=[]).config[
            "env_file"
        ]
        == "3DBall"
    )


def test_unrendered_template_project_toml_is_ignored(outside_job, tmp_path):
    placeholder = TEMPLATE_MARKER + "s3_bucket }}"
    (tmp_path / "project.toml").write_text(f'[aws]\ns3_bucket = "{placeholder}"\n')
    assert Probe({"project_file": str(tmp_path / "project.toml")}, argv=[]).config["bucket"] == ""


def test_broken_project_toml_is_named(outside_job, tmp_path):
    (tmp_path / "project.toml").write_text("[aws\n")
    with pytest.raises(ConfigError, match="project.toml is not valid TOML"):
        Probe({"project_file": str(tmp_path / "project.toml")}, argv=[])


# Values the template refuses are refused here too, naming project.toml's table and key.
HOSTILE_PROJECT_VALUES = [
    ("aws", "s3_bucket", "a..b"),
    ("aws", "s3_bucket", "my-bucket\n"),
    ("aws", "s3_bucket", "amzn-s3-demo-bucket"),
    ("unity_build", "zip_key", "builds/Walker.zip "),
    ("unity_build", "zip_key", "../Walker.zip"),
    ("unity_build", "folder", ""),
    ("unity_build", "folder", "."),
    ("unity_build", "folder", ".."),
    ("unity_build", "folder", "src"),
    ("unity_build", "folder", "tests"),
    ("unity_build", "folder", "builds"),
    ("unity_build", "folder", "walker_build\n"),
    ("unity_build", "folder", "/tmp/walker"),
    ("unity_build", "executable", "Walker "),
    ("unity_build", "executable", "Walker\n"),
    ("unity_build", "executable", "bin/Walker"),
    ("unity_build", "executable", "Walker.exe"),
]


@pytest.mark.parametrize(
    ("table", "key", "value"),
    HOSTILE_PROJECT_VALUES,
    ids=[f"{t}.{k}={v!r}" for t, k, v in HOSTILE_PROJECT_VALUES],
)
def test_project_toml_value_the_template_would_refuse_is_named(outside_job, tmp_path, table, key, value):
    text = PROJECT_TOML.replace(f'{key} = "', f'{key} = "REPLACE', 1)
    start = text.index('"REPLACE')
    end = text.index("\n", start)
    (tmp_path / "project.toml").write_text(text[:start] + json.dumps(value) + text[end:])

    with pytest.raises(ConfigError) as refused:
        Probe({"project_file": str(tmp_path / "project.toml")}, argv=[])

    assert f"[{table}] {key}={value!r}: " in str(refused.value)


def test_build_folder_holding_the_zip_in_project_toml_is_refused(outside_job, tmp_path):
    (tmp_path / "project.toml").write_text(
        PROJECT_TOML.replace('"walker_build"', '"games"').replace('"builds/Walker.zip"', '"games/Walker.zip"')
    )
    with pytest.raises(ConfigError, match=r"\[unity_build\] folder='games': holds the build zip"):
        Probe({"project_file": str(tmp_path / "project.toml")}, argv=[])


# ---- mode and folders ----------------------------------------------------------------------------


def test_job_mode_writes_to_sagemaker_folders(job):
    probe = Probe(SCRIPT_CONFIG, argv=[])
    assert not probe.local
    assert probe.model_dir == job / "model" and probe.output_dir == job / "output/data"
    assert probe.checkpoint_dir == job / "checkpoints"


def test_job_checkpoints_default_to_opt_ml_checkpoints():
    assert Path("/opt/ml/checkpoints") == trainer_module.SAGEMAKER_CHECKPOINT_DIR


def test_checkpoint_dir_is_configurable(job, tmp_path):
    assert (
        Probe(SCRIPT_CONFIG, argv=["--checkpoint_dir", str(tmp_path / "ck")]).checkpoint_dir
        == tmp_path / "ck"
    )


def test_local_flag_forces_local_mode_inside_a_job(job, tmp_path):
    probe = Probe({**SCRIPT_CONFIG, "runs_dir": str(tmp_path / "runs")}, argv=["--local"])
    assert probe.local and probe.model_dir.parent.parent == tmp_path / "runs"


def test_local_trainer_is_local_inside_a_job(job):
    class Mine(LocalTrainer):
        def run(self):
            pass

    assert Mine(SCRIPT_CONFIG, argv=[]).local


@pytest.mark.usefixtures("outside_job")
def test_local_run_folder_is_named_after_the_script_and_time(tmp_path):
    import random_trainer

    probe = random_trainer.RandomTrainer({"runs_dir": str(tmp_path / "runs"), "project_file": ""}, argv=[])
    assert re.fullmatch(r"random-\d{8}-\d{6}", probe.run_dir.name)
    assert {probe.model_dir.name, probe.output_dir.name, probe.checkpoint_dir.name} == {
        "model",
        "output",
        "checkpoints",
    }
    assert probe.model_dir.parent == probe.run_dir


@pytest.mark.usefixtures("outside_job")
def test_two_local_runs_in_the_same_second_get_separate_folders(tmp_path):
    config = {"runs_dir": str(tmp_path / "runs"), "project_file": ""}
    first, second = Probe(config, argv=[]), Probe(config, argv=[])
    second._started = first._started
    assert first.run_dir != second.run_dir


def test_repr_is_a_string_naming_mode_and_config(job):
    text = repr(Probe(SCRIPT_CONFIG, argv=[]))
    assert isinstance(text, str) and text.startswith("Probe(mode=sagemaker, config={")


def test_trainer_without_run_cannot_be_instantiated():
    class Incomplete(Trainer):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete({}, argv=[])


# ---- metric lines ----------------------------------------------------------------------------------


def test_metric_line_matches_the_launchers_regexes_and_is_kept_as_jsonl(job, capsys):
    probe = Probe(SCRIPT_CONFIG, argv=[])
    probe.log_metrics(1200, episode_reward_mean=0.53, fps=231.4)
    line = capsys.readouterr().out.strip()
    assert line == "step=1200 episode_reward_mean=0.53 fps=231.4"
    assert re.search(r"episode_reward_mean=([-+0-9.eE]+)", line).group(1) == "0.53"
    record = json.loads((probe.output_dir / "metrics.jsonl").read_text())
    assert record == {"step": 1200, "episode_reward_mean": 0.53, "fps": 231.4}


def test_write_json_leaves_only_the_finished_file(job):
    probe = Probe(SCRIPT_CONFIG, argv=[])
    path = probe.write_json("summary.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in path.parent.iterdir()] == [
        "summary.json"
    ]


def test_seed_gives_a_reproducible_rng(job):
    a, b = Probe({**SCRIPT_CONFIG, "seed": 5}, argv=[]), Probe({**SCRIPT_CONFIG, "seed": 5}, argv=[])
    assert a.seed == 5 and a.rng.random() == b.rng.random()
