"""Rendering: every supported combination bakes into a clean, complete, parseable repository."""

from __future__ import annotations

import json
import py_compile
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import ALGORITHMS, LEFTOVER_JINJA, TEMPLATE_DIR, bake, load_module, local_extensions, text_files

REGIONS_TO_BAKE = ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1"]

# What each algorithm choice adds; random_trainer.py is always there.
ALGORITHM_FILES = {
    "ppo": {
        "src/ppo_trainer.py",
        "tests/trainers/test_ppo_trainer.py",
        "tests/trainers/test_ppo_distributed.py",
        "benchmarks/bench_trainers.py",
        "benchmarks/bench_distributed.py",
    },
    "tf": {"src/tf_trainer.py", "tests/trainers/test_tf_trainer.py"},
}
LEARNING_SUPPORT_FILES = {"src/template_runtime/tf_blocks.py", "tests/trainers/learning_helpers.py"}


def template_files() -> set[str]:
    root = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and ".pytest_cache" not in path.parts
    }


def expected_files(algorithm: str) -> set[str]:
    files = template_files() | {".cookiecutter.json"}
    for owner, owned in ALGORITHM_FILES.items():
        if algorithm not in (owner, "all"):
            files -= owned
    if algorithm == "random":
        files -= LEARNING_SUPPORT_FILES
    return files


def baked_files(project: Path) -> set[str]:
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and ".pytest_cache" not in path.parts
    }


@pytest.mark.parametrize("region", REGIONS_TO_BAKE)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_combination_bakes_a_clean_repository(cookies, algorithm, region):
    result = bake(cookies, algorithm=algorithm, aws_region=region)

    assert result.exit_code == 0, result.exception
    project = result.project_path
    assert baked_files(project) == expected_files(algorithm)
    for path in text_files(project):
        text = path.read_text(encoding="utf-8")
        assert not LEFTOVER_JINJA.search(text), f"Jinja left in {path.relative_to(project)}"
        if path.suffix == ".py":
            py_compile.compile(str(path), cfile=str(path.with_suffix(".pyc-check")), doraise=True)
            path.with_suffix(".pyc-check").unlink()
        elif path.suffix == ".ipynb":
            nbformat.validate(nbformat.read(path, as_version=4))
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix in {".yml", ".yaml"}:
            yaml.safe_load(text)
        elif path.suffix == ".json":
            json.loads(text)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_project_toml_holds_the_answers(cookies, algorithm):
    result = bake(cookies, algorithm=algorithm, aws_region="eu-west-1", s3_bucket="my-builds.eu",
                  ecr_image_uri="111122223333.dkr.ecr.eu-west-1.amazonaws.com/rl/unity@sha256:" + "a" * 64,
                  unity_build_zip_key="games/Walker v2.zip", unity_build_folder="env/walker",
                  unity_executable="Walker.x86_64", instance_type="ml.g5.xlarge")

    config = tomllib.loads((result.project_path / "project.toml").read_text(encoding="utf-8"))
    assert config["aws"] == {
        "region": "eu-west-1",
        "s3_bucket": "my-builds.eu",
        "ecr_image_uri": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/rl/unity@sha256:" + "a" * 64,
        "instance_type": "ml.g5.xlarge",
    }
    assert config["unity_build"] == {"zip_key": "games/Walker v2.zip", "folder": "env/walker",
                                     "executable": "Walker.x86_64"}
    entry_point = {"tf": "tf_trainer.py", "random": "random_trainer.py"}.get(algorithm, "ppo_trainer.py")
    assert config["training"] == {"algorithm": algorithm, "entry_point": entry_point}


HOSTILE_TEXT = {
    "project_name": 'Robo "Quote" \'Single\' \\back\\slash\n# not a heading',
    "project_description": "{% raw %}{{ cookiecutter.s3_bucket }} {% if x %}{% endraw %} $(touch PWNED) `touch PWNED` '''\"\"\"",
    "author_name": "O'Brien & <Sons>\\n\r\nline2 \u00e9\u4e2d",
}


def test_hostile_free_text_renders_inert(cookies):
    result = bake(cookies, project_slug="robo", **HOSTILE_TEXT)

    assert result.exit_code == 0, result.exception
    project = result.project_path
    typed = {  # what the user typed: the {% raw %} wrapper is how extra_context carries literal Jinja
        "project_name": HOSTILE_TEXT["project_name"],
        "project_description": "{{ cookiecutter.s3_bucket }} {% if x %} $(touch PWNED) `touch PWNED` '''\"\"\"",
        # cookiecutter renders extra_context values as templates, and Jinja folds \r\n into \n there
        "author_name": HOSTILE_TEXT["author_name"].replace("\r\n", "\n"),
    }
    assert {key: result.context[key] for key in typed} == typed
    answers = tomllib.loads((project / "project.toml").read_text(encoding="utf-8"))["project"]
    assert (answers["name"], answers["description"], answers["author"]) == (
        typed["project_name"], typed["project_description"], typed["author_name"])
    workflow = yaml.safe_load((project / ".github/workflows/tests.yml").read_text(encoding="utf-8"))
    assert workflow["name"] == typed["project_name"] + " tests"
    kept = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert {key: kept[key] for key in typed} == typed
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# Robo \"Quote\" 'Single' \\\\back\\\\slash \\# not a heading\n")
    assert not LEFTOVER_JINJA.search(readme)
    assert not list(project.rglob("PWNED")) and not list(Path.cwd().glob("PWNED"))


def test_post_gen_hook_prints_the_next_steps(cookies, capfd):
    result = bake(cookies)

    assert result.exit_code == 0, result.exception
    out = capfd.readouterr().out
    for step in ("make demo", "make test", "git push", "SageMaker notebook instance", "job_launcher.ipynb"):
        assert step in out


def test_answers_file_keeps_no_local_paths(baked_default):
    answers = json.loads((baked_default / ".cookiecutter.json").read_text(encoding="utf-8"))

    assert not {"_output_dir", "_repo_dir", "_checkout"} & answers.keys()
    assert answers["project_slug"] == "unity_sagemaker_rl"


def test_rendered_repository_contains_no_credentials(baked_default):
    for path in text_files(baked_default):
        text = path.read_text(encoding="utf-8")
        assert "AKIA" not in text and "aws_secret_access_key =" not in text, path


def test_gitignore_keeps_builds_outputs_and_credentials_out(baked_default):
    ignored = (baked_default / ".gitignore").read_text(encoding="utf-8").split()
    for pattern in ("builds/", "runs/", ".venv*/", ".env", "credentials", "/unity_build/", "*.pem"):
        assert pattern in ignored


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_baked_repository_passes_its_own_linter(cookies, algorithm):
    """Users copy this code: it should pass the ruff rules the rendered pyproject.toml sets."""
    project = bake(cookies, algorithm=algorithm).project_path

    completed = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project,
                               capture_output=True, text=True)

    assert completed.returncode == 0, completed.stdout + completed.stderr


# ------------------------------------------------------------------ project.toml is always TOML

FREE_TEXT_FIELDS = ("project_name", "project_description", "author_name")
# Each is given to every free-text field at once (with the field's name appended, so they differ).
HOSTILE_FREE_TEXTS = [
    "\U0001f680 Rocket",  # the issue's: a JSON surrogate-pair escape is not TOML
    "\U0001f469\u200d\U0001f469\u200d\U0001f467 family \U0001f1ef\U0001f1f5 flag \U0001f3f3\ufe0f\u200d\U0001f308",
    "\U00020000\U0002a6d6 CJK extension B, \U0001d11e music, \U0010fffd last plane",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd and \u0645\u0631\u062d\u0628\u0627",  # Hebrew, Arabic
    "\u202eevil\u202c \u2067isolate\u2069 \u200f\u200e marks \u200b\u2060\ufeff zero-width",
    "".join(chr(c) for c in range(1, 32)) + "\x7f\x80\x85\x9f",  # every C0 control but NUL, DEL, C1
    "line\u2028separator\u2029paragraph \x0b vertical \x0c feed",
    'double " single \' triple """ \'\'\' backslash \\ end\\',
    "\\u0041 \\U0001F680 \\n \\t \\\" escapes typed literally",
    '"\nmalicious = true\n[aws]\nregion = "us-west-2',  # TOML injection
    "# not a comment ] [table] = {inline} 'key' = 1",
    "\uffff \ufffe noncharacters, \ue000 private use, \U000e0001 tag",
    "e\u0301 combining, \uff21 fullwidth, \u0391 Greek look-alike",
    "\U0001f680" * 500,  # the longest accepted, all outside the BMP
    "tab\tseparated\tvalues  and  spaces ",
]


def test_toml_string_round_trips_every_unicode_scalar_value():
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)

    text = "value = " + local_extensions.toml_basic_string(every) + "\n"

    assert tomllib.loads(text)["value"] == every
    assert "\\ud83d" not in text.lower()  # never a surrogate-pair escape
    assert "\U0001f680" in text  # non-BMP characters as themselves


@pytest.mark.parametrize("surrogate", [0xD800, 0xDBFF, 0xDC00, 0xDFFF])
def test_toml_string_refuses_a_lone_surrogate(surrogate):
    with pytest.raises(ValueError, match=f"U\\+{surrogate:04X}"):
        local_extensions.toml_basic_string("a" + chr(surrogate))


def test_toml_string_escapes_controls_and_invisibles_and_keeps_the_rest():
    assert local_extensions.toml_basic_string('a"b\\c\b\t\n\f\r\x00\x1f\x7f\u200b\U000e0001\U0001f680') == (
        '"a\\"b\\\\c\\b\\t\\n\\f\\r\\u0000\\u001F\\u007F\\u200B\\U000E0001\U0001f680"')


@pytest.mark.parametrize("text", HOSTILE_FREE_TEXTS, ids=range(len(HOSTILE_FREE_TEXTS)))
def test_yaml_string_round_trips(text):
    assert yaml.safe_load("name: " + local_extensions.toml_basic_string(text)) == {"name": text}


@pytest.mark.parametrize("text", HOSTILE_FREE_TEXTS, ids=range(len(HOSTILE_FREE_TEXTS)))
def test_free_text_answers_render_valid_toml_that_round_trips_exactly(cookies, text):
    answers = {field: (text + (f" {field}" if len(text) < 450 else ""))[:500] for field in FREE_TEXT_FIELDS}

    result = bake(cookies, project_slug="robo", **answers)

    assert result.exit_code == 0, result.exception
    project = result.project_path
    rendered = {field: result.context[field] for field in FREE_TEXT_FIELDS}  # as cookiecutter rendered them
    assert rendered == {field: value.replace("\r", "\n") for field, value in answers.items()}
    config = tomllib.loads((project / "project.toml").read_text(encoding="utf-8"))
    assert (config["project"]["name"], config["project"]["description"], config["project"]["author"]) == (
        rendered["project_name"], rendered["project_description"], rendered["author_name"])
    workflow = yaml.safe_load((project / ".github/workflows/tests.yml").read_text(encoding="utf-8"))
    assert workflow["name"] == rendered["project_name"] + " tests"
    kept = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert {field: kept[field] for field in FREE_TEXT_FIELDS} == rendered
    assert read_back(project).name == rendered["project_name"]


# Answers at the edge of their rules: accepted, and read back unchanged by the repo's own reader.
EDGE_ANSWERS = [
    {"s3_bucket": "abc"},
    {"s3_bucket": "a" * 63},
    {"s3_bucket": "my.builds.eu-1"},
    {"s3_bucket": "s3alias-xn--not-a-prefix"},
    {"s3_bucket": "1.2.3.4.5"},
    {"ecr_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/sub/unity_rl.v2@sha256:" + "a" * 64},
    {"unity_build_zip_key": "a!_.*'() +=@,-/B.ZIP"},
    {"unity_build_zip_key": "3DBall.zip", "unity_build_folder": "3DBall"},
    {"unity_build_folder": "env/walker v2", "unity_executable": "My Game.x86_64"},
    {"unity_build_folder": "srcs/unity_build-2", "unity_executable": "Player+1"},
    {"instance_type": "ml.m7i-flex.large"},
    {"instance_type": "ml.p6-b200.48xlarge"},
    {"aws_region": "us-gov-west-1",
     "ecr_image_uri": "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/unity-rl:latest"},
]
PROJECT_FILE_ATTRIBUTES = {"s3_bucket": "bucket", "ecr_image_uri": "image_uri", "unity_build_zip_key": "build_key",
                           "unity_build_folder": "build_folder", "unity_executable": "executable",
                           "instance_type": "instance_type", "aws_region": "region"}


def read_back(project: Path):
    """project.toml read by the rendered repository's own project_file.py."""
    runtime = project / "src" / "template_runtime"
    load_module("template_runtime", runtime / "__init__.py").__path__ = [str(runtime)]
    return load_module("template_runtime.project_file", runtime / "project_file.py").read_project_file(
        project / "project.toml")


@pytest.mark.parametrize("answers", EDGE_ANSWERS, ids=range(len(EDGE_ANSWERS)))
def test_answers_at_the_edge_of_their_rules_are_accepted_and_read_back(cookies, answers):
    result = bake(cookies, **answers)

    assert result.exit_code == 0, result.exception
    project_file = read_back(result.project_path)
    assert {key: getattr(project_file, PROJECT_FILE_ATTRIBUTES[key]) for key in answers} == answers
