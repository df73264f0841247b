"""The entry-point contract, read without running the script: config keys, comments, trainer, metrics."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from template_runtime.entry_point import EntryPointError, find_entry_points, read_defaults, read_entry_point

SRC = Path(__file__).resolve().parents[2] / "src"


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_any_file_name_with_a_config_and_a_trainer_subclass_is_an_entry_point(tmp_path):
    path = script(
        tmp_path,
        "reinforce.py",
        """
        from trainer import Trainer
        config = {
            "learning_rate": 0.01,  # step size of the policy gradient
            "hidden": [32],
            "schedule": make_schedule(),
        }
        class Base(Trainer):
            metrics = ("loss",)
        class Reinforce(Base):
            def run(self):
                pass
        if __name__ == "__main__":
            Reinforce(config).run()
        """,
    )
    info = read_entry_point(path)
    assert info.trainer_class == "Reinforce" and info.metrics == ("loss",)
    assert info.config == {"learning_rate": 0.01, "hidden": [32], "schedule": None}
    assert info.comments == {"learning_rate": "step size of the policy gradient"}
    (tmp_path / "trainer.py").write_text("DEFAULT_CONFIG = {}\n")
    (tmp_path / "notes.py").write_text("config = {}\n")
    assert find_entry_points(tmp_path) == ["reinforce.py"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("config = {}\n", "no Trainer subclass"),
        ("from trainer import Trainer\nclass T(Trainer):\n    pass\n", "no module-level `config"),
        (
            "from trainer import Trainer\nconfig = dict(a=1)\nclass T(Trainer):\n    pass\n",
            "must be a dict literal",
        ),
        (
            "import trainer\nBASE = {}\nconfig = {**BASE}\nclass T(trainer.Trainer):\n    pass\n",
            "\\*\\*unpacking",
        ),
        ("from trainer import Trainer\nconfig = {1: 2}\nclass T(Trainer):\n    pass\n", "string literal"),
        (
            "from trainer import Trainer\nconfig = {}\nNAMES = ('a',)\n"
            "class T(Trainer):\n    metrics = NAMES\n",
            "literal tuple of names",
        ),
        ("config = {\n", "does not parse"),
    ],
)
def test_a_script_that_breaks_the_contract_is_refused_saying_what_to_change(tmp_path, body, message):
    with pytest.raises(EntryPointError, match=message):
        read_entry_point(script(tmp_path, "x.py", body))


def test_the_examples_follow_the_contract_and_declare_their_metrics():
    names = find_entry_points(SRC)
    assert "random_trainer.py" in names and "trainer.py" not in names
    info = read_entry_point(SRC / "random_trainer.py")
    assert info.trainer_class == "RandomTrainer" and "episode_reward" in info.metrics
    assert info.comments["episodes"].startswith("stop after")


def test_default_config_keys_carry_their_comments():
    defaults, comments = read_defaults(SRC)
    assert defaults["worker_id"] == 0 and defaults["num_envs"] == 1
    assert "port 5005 + worker_id" in comments["worker_id"]
    assert set(comments) == set(defaults)  # every default key explains itself
