"""Tidy the freshly rendered repository and tell the user what to do next.

Runs inside the new project folder after rendering. Each option that can
leave files out has its own small ``remove_*`` function, so adding an
algorithm means adding one entry to ``ALGORITHM_FILES``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ANSWERS: dict = json.loads({{ cookiecutter | jsonify(indent=None) | jsonify(indent=None) }})

# Files that belong to one example algorithm. random_trainer.py is always kept: it is the
# reference trainer, and `make demo` runs it.
ALGORITHM_FILES: dict[str, tuple[str, ...]] = {
    "ppo": (
        "src/ppo_trainer.py",
        "tests/trainers/test_ppo_trainer.py",
        "tests/trainers/test_ppo_distributed.py",  # DD-PPO on several workers
        "benchmarks/bench_trainers.py",  # PPO against Stable-Baselines3
        "benchmarks/bench_distributed.py",  # DD-PPO with 1, 2, 3 workers
    ),
    "tf": ("src/tf_trainer.py", "tests/trainers/test_tf_trainer.py"),
}
# Support code the TensorFlow examples share (network blocks, checkpoints, SavedModel export);
# the random example needs none of it. (The env API, template_runtime/vec_env.py, is everyone's.)
LEARNING_SUPPORT_FILES = (
    "src/template_runtime/tf_blocks.py",
    "tests/trainers/learning_helpers.py",
)

# Answers that only describe the machine the template was rendered on; keeping them out of
# .cookiecutter.json keeps local paths out of a repository that will be pushed.
MACHINE_LOCAL_KEYS = ("_output_dir", "_repo_dir", "_checkout")


def remove(relative_path: str) -> None:
    path = Path(relative_path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def remove_unchosen_algorithms(chosen: str) -> None:
    for algorithm, files in ALGORITHM_FILES.items():
        if chosen not in (algorithm, "all"):
            for relative_path in files:
                remove(relative_path)
    if chosen == "random":
        for relative_path in LEARNING_SUPPORT_FILES:
            remove(relative_path)


def write_answers_file() -> None:
    """Keep the answers (cruft/cookiecutter replay format) so the project can be re-rendered later."""
    answers = {key: value for key, value in ANSWERS.items() if key not in MACHINE_LOCAL_KEYS}
    Path(".cookiecutter.json").write_text(json.dumps(answers, indent=2) + "\n", encoding="utf-8")


DEMO = {"ppo": "PPO", "tf": "DQN", "random": "the random agent", "all": "PPO"}  # what make demo trains


def print_next_steps() -> None:
    slug = ANSWERS["project_slug"]
    print(
        f"""
Created {slug}/. Next steps (README.md has them all):

  1. Try it locally (no AWS, no Unity needed; Python 3.11 and make):
       cd {slug}
       make demo        # {DEMO.get(ANSWERS["algorithm"], "the example")}, briefly, on the bundled simulated Unity build
       make test        # the repository's own tests

  2. Put it on GitHub:
       git init -b main && git add -A && git commit -m "Start from unity-sagemaker-rl"
       git remote add origin https://github.com/<you>/{slug}.git
       git push -u origin main

  3. Make the IAM role the training jobs run as (only this project's bucket, image, logs):
       make role ARGS=--dry-run   # the policy and the requests first; then: make role

  4. Open it on a SageMaker notebook instance (after pushing; needs AWS credentials and a role):
       export SAGEMAKER_ROLE_ARN=arn:aws:iam::<account>:role/<role>
       make notebook    # private repo: a GitHub token with only the 'repo' scope, in GITHUB_TOKEN or at the prompt
     It prints the JupyterLab link; open job_launcher.ipynb there.

  5. Upload your zipped Unity Linux build to s3://{ANSWERS["s3_bucket"]}/{ANSWERS["unity_build_zip_key"]}
     and publish the training image to {ANSWERS["ecr_image_uri"]} (see README.md).
"""
    )


def main() -> None:
    remove_unchosen_algorithms(ANSWERS["algorithm"])
    write_answers_file()
    print_next_steps()


if __name__ == "__main__":
    main()
