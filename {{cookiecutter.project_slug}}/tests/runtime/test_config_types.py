"""Config types: every layer (default, config dict, project.toml, SM_HPS, command line) refuses a value
of the wrong type, a non-finite number or an out-of-range seed/worker_id with one ConfigError that
names the source, the key and the value; nothing else (OverflowError, AttributeError) escapes.

COUNT: 96 SM_HPS values plus 8 SM_HPS texts that are not a JSON object (or not JSON), 26 command-line
values, 12 config-dict values, 4 project.toml values, 4 defaults and 3 cross-key cases are refused
(153 hostile inputs); 20 good values must still be accepted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from template_runtime import config as config_module
from template_runtime.config import ConfigError, coerce, validate_config
from trainer import Trainer

pytestmark = pytest.mark.usefixtures("no_internet")

SCRIPT_CONFIG = {
    "episodes": 10,
    "learning_rate": 3e-4,
    "hidden_sizes": [64, 64],
    "num_envs": 1,
    "project_file": "",
}


class Probe(Trainer):
    def run(self):
        return self.config


@pytest.fixture
def job(tmp_path, monkeypatch) -> Path:
    """Inside a (simulated) training container, so SM_HPS is read."""
    for name, sub in {"SM_MODEL_DIR": "model", "SM_OUTPUT_DATA_DIR": "output"}.items():
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("SM_TRAINING_ENV", "{}")
    monkeypatch.delenv("SM_HPS", raising=False)
    return tmp_path


# ---- SM_HPS: (key, JSON text of the value, a fragment of the problem) ------------------------------

NOT_FINITE = "is not a finite number"
SM_HPS_REFUSED = [
    # whole-number keys
    ("episodes", "true", "is a bool"),
    ("episodes", "false", "is a bool"),
    ("episodes", "2.5", "is not a whole number"),
    ("episodes", '"2.5"', "is not a whole number"),
    ("episodes", "Infinity", NOT_FINITE),
    ("episodes", "-Infinity", NOT_FINITE),
    ("episodes", "NaN", NOT_FINITE),
    ("episodes", "1e400", NOT_FINITE),
    ("episodes", '"inf"', NOT_FINITE),
    ("episodes", '"nan"', NOT_FINITE),
    ("episodes", '"1e400"', NOT_FINITE),
    ("episodes", '"Infinity"', NOT_FINITE),
    ("episodes", "1e30", "must fit in 64 bits"),
    ("episodes", "1" + "0" * 25, "must fit in 64 bits"),
    ("episodes", '"' + "9" * 400 + '"', "must fit in 64 bits"),
    ("episodes", "null", "is not a whole number"),
    ("episodes", "[3]", "is not a whole number"),
    ("episodes", '{"a": 1}', "is not a whole number"),
    ("episodes", '"three"', "is not a whole number"),
    ("episodes", '""', "is not a whole number"),
    ("episodes", '"0x10"', "is not a whole number"),
    ("total_timesteps_typo", "1", "unknown key"),
    ("timeout_wait", "true", "is a bool"),
    ("timeout_wait", "1e400", NOT_FINITE),
    ("timeout_wait", "0", "must be positive"),
    ("timeout_wait", "-5", "must be positive"),
    # numbers
    ("learning_rate", "true", "is a bool"),
    ("learning_rate", "Infinity", NOT_FINITE),
    ("learning_rate", "-Infinity", NOT_FINITE),
    ("learning_rate", "NaN", NOT_FINITE),
    ("learning_rate", '"nan"', NOT_FINITE),
    ("learning_rate", '"Infinity"', NOT_FINITE),
    ("learning_rate", '"-inf"', NOT_FINITE),
    ("learning_rate", "1e400", NOT_FINITE),
    ("learning_rate", "1" + "0" * 400, "too big for a number"),
    ("learning_rate", "null", "is not a number"),
    ("learning_rate", '"fast"', "is not a number"),
    ("learning_rate", "[0.1]", "is not a number"),
    ("time_scale", "0.0", "must be positive"),
    ("time_scale", "NaN", NOT_FINITE),
    ("time_scale", "-1", "must be positive"),
    # bools
    ("use_visual", "2", "is not true or false"),
    ("use_visual", '"maybe"', "is not true or false"),
    ("use_visual", "null", "is not true or false"),
    ("use_visual", "1.0", "is not true or false"),
    ("use_visual", "[true]", "is not true or false"),
    ("no_graphics", '"yes please"', "is not true or false"),
    # text
    ("env_file", '"3DBall\\u0000"', "contains a NUL character"),
    ("bucket", '"a\\u0000b"', "contains a NUL character"),
    ("bucket", "true", "is not text"),
    ("env_file", '["a"]', "is not text"),
    ("env_file", '{"a": 1}', "is not text"),
    ("bucket", "Infinity", NOT_FINITE),
    # seed: a signed 32-bit int for Unity, never negative
    ("seed", "-1", "from 0 to 2147483647"),
    ("seed", '"-1"', "from 0 to 2147483647"),
    ("seed", str(2**31), "from 0 to 2147483647"),
    ("seed", str(2**32), "from 0 to 2147483647"),
    ("seed", str(2**64), "must fit in 64 bits"),
    ("seed", "1.5", "is not a whole number"),
    ("seed", "true", "is a bool"),
    ("seed", "NaN", NOT_FINITE),
    # worker_id: port 5005 + worker_id must exist
    ("worker_id", "70000", "at most 60530"),
    ("worker_id", "60531", "at most 60530"),
    ("worker_id", "-1", "must be 0 or more"),
    ("worker_id", "true", "is a bool"),
    ("worker_id", "Infinity", NOT_FINITE),
    # list elements: whole numbers
    ("hidden_sizes", "[64.7]", "element 0 = 64.7"),
    ("hidden_sizes", "[true]", "element 0 = True"),
    ("hidden_sizes", '["a"]', "element 0 = 'a'"),
    ("hidden_sizes", "[64, null]", "element 1 = None"),
    ("hidden_sizes", "[[64]]", "element 0 = [64]"),
    ("hidden_sizes", '"64.7 64"', "element 0 = '64.7'"),
    ("hidden_sizes", "[Infinity]", NOT_FINITE),
    ("hidden_sizes", "[1e400]", NOT_FINITE),
    ("hidden_sizes", "64", "is not a list"),
    ("hidden_sizes", '{"a": 64}', "is not a list"),
    ("hidden_sizes", '"[64,"', "is not a JSON list"),
    # list elements: text
    ("additional_args", "[4]", "which is not text"),
    ("additional_args", '["--agents", 4]', "element 1 = 4"),
    ("additional_args", "[true]", "which is not text"),
    ("additional_args", "[null]", "which is not text"),
    ("additional_args", '"--agents \\"4"', "nor space-separated words"),
    ("additional_args", '["a\\u0000b"]', "contains a NUL character"),
    ("additional_args", "5", "is not a list"),
    # dict values: finite numbers under non-empty names
    ("env_parameters", '{"x": NaN}', NOT_FINITE),
    ("env_parameters", '{"x": Infinity}', NOT_FINITE),
    ("env_parameters", '{"x": 1e400}', NOT_FINITE),
    ("env_parameters", '{"x": true}', "is a bool"),
    ("env_parameters", '{"x": "5"}', "write it without quotes"),
    ("env_parameters", '{"": 1.0}', "must be non-empty text"),
    ("env_parameters", '{" ": 1.0}', "must be non-empty text"),
    ("env_parameters", '{"x": null}', "is not a number"),
    ("env_parameters", '{"x": [1]}', "is not a number"),
    ("env_parameters", "[1]", "is not a JSON object"),
    ("env_parameters", '"notjson"', "is not a JSON object"),
    ("env_parameters", '{"a\\u0000": 1}', "contains a NUL character"),
]


@pytest.mark.parametrize(("key", "text", "problem"), SM_HPS_REFUSED)
def test_sm_hps_value_is_refused_naming_source_key_and_value(job, monkeypatch, key, text, problem):
    monkeypatch.setenv("SM_HPS", f'{{"{key}": {text}}}')
    value = json.loads(text)
    with pytest.raises(ConfigError) as error:
        Probe(SCRIPT_CONFIG, argv=[])
    message = str(error.value)
    assert message.startswith("SM_HPS: "), message
    assert problem in message, message
    if problem != "unknown key":
        assert f"{key}={config_module.shown(value)}" in message, message


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[]", "a list"),
        ("[1, 2]", "a list"),
        ("5", "a number"),
        ("2.5", "a number"),
        ("null", "null"),
        ('"text"', "a string"),
        ("true", "a bool"),
    ],
)
def test_sm_hps_that_is_not_a_json_object_is_one_clear_error(job, monkeypatch, text, kind):
    monkeypatch.setenv("SM_HPS", text)
    with pytest.raises(ConfigError, match=f"SM_HPS must be a JSON object of hyperparameters .*not {kind}"):
        Probe(SCRIPT_CONFIG, argv=[])


def test_sm_hps_that_is_not_json_is_named(job, monkeypatch):
    monkeypatch.setenv("SM_HPS", '{"episodes": ')
    with pytest.raises(ConfigError, match="SM_HPS is not JSON"):
        Probe(SCRIPT_CONFIG, argv=[])


# ---- the command line ---------------------------------------------------------------------------

COMMAND_LINE_REFUSED = [
    ("episodes", "true", "is not a whole number"),
    ("episodes", "inf", NOT_FINITE),
    ("episodes", "-inf", NOT_FINITE),
    ("episodes", "1e400", NOT_FINITE),
    ("episodes", "nan", NOT_FINITE),
    ("episodes", "2.5", "is not a whole number"),
    ("learning_rate", "inf", NOT_FINITE),
    ("learning_rate", "1e400", NOT_FINITE),
    ("learning_rate", "NaN", NOT_FINITE),
    ("learning_rate", "Infinity", NOT_FINITE),
    ("seed", "-1", "from 0 to 2147483647"),
    ("seed", "4294967296", "from 0 to 2147483647"),
    ("seed", "1e400", NOT_FINITE),
    ("worker_id", "70000", "at most 60530"),
    ("worker_id", "1e9", "at most 60530"),
    ("hidden_sizes", "[64.7]", "element 0 = 64.7"),
    ("hidden_sizes", "[true]", "element 0 = True"),
    ("hidden_sizes", "a", "element 0 = 'a'"),
    ("hidden_sizes", "64 -", "element 1 = '-'"),
    ("env_parameters", '{"x": NaN}', NOT_FINITE),
    ("env_parameters", '{"x": Infinity}', NOT_FINITE),
    ("env_parameters", "{x: 1}", "is not a JSON object"),
    ("additional_args", "[4]", "which is not text"),
    ("bucket", "a\x00b", "contains a NUL character"),
    ("use_visual", "2", "is not true or false"),
    ("timeout_wait", "0", "must be positive"),
]


@pytest.mark.parametrize(("key", "text", "problem"), COMMAND_LINE_REFUSED)
def test_command_line_value_is_refused_naming_source_key_and_value(job, key, text, problem):
    with pytest.raises(ConfigError) as error:
        Probe(SCRIPT_CONFIG, argv=[f"--{key}={text}"] if text.startswith("-") else [f"--{key}", text])
    message = str(error.value)
    assert message.startswith(f"command line: {key}={text!r} "), message
    assert problem in message, message


# ---- the script's config dict, project.toml and the defaults ---------------------------------------

CONFIG_DICT_REFUSED = [
    ("hidden_sizes", [64.7], "element 0 = 64.7"),
    ("hidden_sizes", [True, 64], "element 0 = True"),
    ("hidden_sizes", (64, "x"), "element 1 = 'x'"),
    ("seed", -1, "from 0 to 2147483647"),
    ("seed", True, "is a bool"),
    ("worker_id", 70000, "at most 60530"),
    ("timeout_wait", math.inf, NOT_FINITE),
    ("time_scale", math.nan, NOT_FINITE),
    ("env_parameters", {"x": math.nan}, NOT_FINITE),
    ("env_parameters", {1: 2.0}, "every name must be non-empty text"),
    ("additional_args", ["--agents", 4], "element 1 = 4"),
    ("env_file", "a\x00", "contains a NUL character"),
]


@pytest.mark.parametrize(("key", "value", "problem"), CONFIG_DICT_REFUSED)
def test_config_dict_value_is_refused_naming_source_key_and_value(job, key, value, problem):
    with pytest.raises(ConfigError) as error:
        Probe({**SCRIPT_CONFIG, key: value}, argv=[])
    message = str(error.value)
    assert message.startswith(f"config dict: {key}={value!r} "), message
    assert problem in message, message


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ('[unity_build]\nfolder = "a\\u0000b"', "[unity_build] folder", "NUL character"),
        ("[aws]\ns3_bucket = true", "[aws] s3_bucket", "must be text, not bool"),
        ('[unity_build]\nexecutable = ["3DBall"]', "[unity_build] executable", "must be text, not list"),
        ("[unity_build]\nzip_key = inf", "[unity_build] zip_key", "must be text, not float"),
    ],
)
def test_project_toml_value_is_refused_naming_the_file_and_field(tmp_path, monkeypatch, line, field, problem):
    """project.toml goes through project_file.py and the template's rules (rules.py)."""
    for name in ("SM_TRAINING_ENV", "SM_MODEL_DIR", "SM_HPS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "project.toml").write_text(line + "\n")
    with pytest.raises(ConfigError) as error:
        Probe({"project_file": str(tmp_path / "project.toml"), "runs_dir": str(tmp_path)}, argv=[])
    message = str(error.value)
    assert str(tmp_path / "project.toml") in message and field in message and problem in message, message


@pytest.mark.parametrize(
    ("config", "key", "problem"),
    [
        ({"seed": -1}, "seed", "from 0 to 2147483647"),
        ({"worker_id": 99999}, "worker_id", "at most 60530"),
        ({"time_scale": math.inf}, "time_scale", NOT_FINITE),
        ({"additional_args": ["a\x00"]}, "additional_args", "contains a NUL character"),
    ],
)
def test_defaults_are_checked_too_and_named_as_default(config, key, problem):
    with pytest.raises(ConfigError, match=f"^default: {key}=.*{problem}"):
        validate_config(config, dict.fromkeys(config, "default"))


# ---- across keys: parallel instances take the next ports and seeds ----------------------------------


def test_worker_id_leaves_room_for_every_parallel_instance(job):
    with pytest.raises(
        ConfigError, match=r"command line: worker_id=60528 is too high for num_envs=4.*at most 60527"
    ):
        Probe(SCRIPT_CONFIG, argv=["--worker_id", "60528", "--num_envs", "4"])
    assert Probe(SCRIPT_CONFIG, argv=["--worker_id", "60527", "--num_envs", "4"]).config["worker_id"] == 60527


def test_seed_leaves_room_for_every_parallel_instance(job, monkeypatch):
    monkeypatch.setenv("SM_HPS", json.dumps({"seed": 2**31 - 1, "num_envs": 2}))
    with pytest.raises(ConfigError, match=r"SM_HPS: seed=2147483647 is too high for num_envs=2"):
        Probe(SCRIPT_CONFIG, argv=[])


def test_highest_seed_and_worker_id_are_accepted_for_one_instance(job):
    config = Probe(SCRIPT_CONFIG, argv=["--seed", str(2**31 - 1), "--worker_id", "60530"]).config
    assert (config["seed"], config["worker_id"]) == (2**31 - 1, 60530)


# ---- what must still be accepted ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("episodes", "1e3", 1000),
        ("episodes", " 7 ", 7),
        ("episodes", 7.0, 7),
        ("episodes", "1_000", 1000),
        ("episodes", "12345678901234567890"[:19], 1234567890123456789),
        ("learning_rate", 1, 1.0),
        ("learning_rate", "3e-4", 3e-4),
        ("use_visual", "on", True),
        ("use_visual", 0, False),
        ("hidden_sizes", "64 32", [64, 32]),
        ("hidden_sizes", "[128, 128]", [128, 128]),
        ("hidden_sizes", ["64", 32.0], [64, 32]),
        ("additional_args", '["--agents", "4"]', ["--agents", "4"]),
        ("additional_args", "--agents 4 --name 'a b'", ["--agents", "4", "--name", "a b"]),
        ("env_parameters", '{"gravity": 5}', {"gravity": 5.0}),
        ("env_parameters", {"mass": -2.5}, {"mass": -2.5}),
        ("seed", "0", 0),
        ("bucket", 123, "123"),
    ],
)
def test_good_values_are_converted(job, key, value, expected):
    config = Probe({**SCRIPT_CONFIG, "additional_args": [], "env_parameters": {}}, argv=[]).config
    converted = coerce(key, value, config[key], "test")
    assert converted == expected and type(converted) is type(expected)


# ---- the launcher uses the same rules ------------------------------------------------------------


def test_config_module_loads_from_its_file_with_the_standard_library_only():
    """The launcher imports config.py by path in a venv without NumPy: it must need nothing else."""
    path = Path(config_module.__file__)
    code = (
        "import importlib.util, sys\n"
        "before = set(sys.modules)\n"
        f"spec = importlib.util.spec_from_file_location('cfg', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "try:\n"
        "    module.coerce('hidden_sizes', [64.7], None, 'hyperparameters for ppo_trainer.py')\n"
        "except ValueError as error:\n"
        "    print(error)\n"
        "new = set(sys.modules) - before\n"
        "third_party = sorted(m for m in new if m.split('.')[0] not in sys.stdlib_module_names)\n"
        "print(third_party)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    first, second = out.splitlines()
    assert first.startswith("hyperparameters for ppo_trainer.py: hidden_sizes=[64.7] has element 0 = 64.7")
    assert second == "[]"  # nothing outside the standard library was imported
