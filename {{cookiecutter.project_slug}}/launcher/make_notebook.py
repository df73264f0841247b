"""Write job_launcher.ipynb: the narrative around launch.py, one step per cell.

    python -m launcher.make_notebook            # rewrite job_launcher.ipynb
    python -m launcher.make_notebook --check    # exit 1 if the committed notebook differs

The `parameters` cell is generated from launcher/settings.py's JobSettings (names, defaults and
their comments), so the notebook and `launch.py --set` always offer the same settings. The notebook
holds no answers of the template: it reads project.toml through launch.py when it runs.
Needs only nbformat (in requirements/launcher-dev.txt).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO_ROOT / "job_launcher.ipynb"
SETTINGS = REPO_ROOT / "launcher" / "settings.py"
TUNING = REPO_ROOT / "launcher" / "tuning.py"
KERNEL = {
    "name": "rl-launcher",
    "display_name": "Python 3.11 (rl-launcher: requirements/launcher.txt)",
    "language": "python",
}
NOTEBOOK_ONLY = [
    (
        "local_build_zip",
        "None",
        "a local zipped Unity Linux build to upload first (skipped if already in S3)",
    ),
    (
        "job_name",
        "None",
        "None: start a new job; a job's name: attach to it (e.g. after a restart)",
    ),
    ("results_dir", '"results"', "where the job's model and output are downloaded"),
    ("tune", "False", "True: a tuning job, many jobs at once (section 6), not one job"),
    ("tuning_job", "None", "a tuning job's name: attach to it, fetch its results"),
]


def settings_fields(path: Path = SETTINGS, class_name: str = "JobSettings") -> list[tuple[str, str, str]]:
    """(name, default source, comment) for each field of a settings dataclass, read from its source."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == class_name)
    fields = []
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            default = ast.get_source_segment(source, node.value)
            default = re.sub(
                r"field\(default_factory=(dict|list)\)", lambda m: "{}" if m[1] == "dict" else "[]", default
            )
            comment = next(
                (
                    lines[i].partition("  # ")[2].strip()
                    for i in range(node.lineno - 1, node.end_lineno)
                    if "  # " in lines[i]
                ),
                "",
            )
            fields.append((node.target.id, default, comment))
    return fields


def tuning_fields() -> list[tuple[str, str, str]]:
    """TuningSettings' fields as notebook parameters: tuning_<name> (tuning_job_name stays)."""
    return [
        (name if name.startswith("tuning_") else f"tuning_{name}", default, comment)
        for name, default, comment in settings_fields(TUNING, "TuningSettings")
    ]


def parameters_cell() -> str:
    blocks = [settings_fields() + NOTEBOOK_ONLY, tuning_fields()]
    return "\n\n# A tuning job (section 6), with tune = True:\n".join(_aligned(rows) for rows in blocks)


def _aligned(rows: list[tuple[str, str, str]]) -> str:
    width = max(len(f"{name} = {default}") for name, default, _ in rows) + 2
    return "\n".join(f"{f'{name} = {default}':<{width}}# {comment}" for name, default, comment in rows)


def load_cell() -> str:
    names = [name for name, _, _ in settings_fields()]
    arguments = "".join(f"    {name}={name},\n" for name in names)
    return f"import launch\n\nsettings = launch.load_settings(\n{arguments})\nprint(settings.describe())"


def tuning_cell() -> str:
    names = [name for name, _, _ in settings_fields(TUNING, "TuningSettings")]
    arguments = "".join(
        f"        {name}={name if name.startswith('tuning_') else 'tuning_' + name},\n" for name in names
    )
    return (
        "tuning = None\nif tune:\n    tuning = launch.load_tuning(\n        settings,\n"
        f"{arguments}    )\n    print(tuning.describe())"
    )


CELLS = [
    (
        "md",
        """# Train an agent on SageMaker

This notebook starts a SageMaker training job for this repository, follows it, and brings its
results back: the learning curve and the saved model. Each step below calls `launch.py`, the same
code as `python launch.py` on the command line, so the two always behave alike.

**Before you start**
* Run this notebook with the launcher's environment: the `rl-launcher` kernel on a notebook instance
  made by `make notebook`, or a Python 3.11 venv with `pip install -r requirements/launcher.txt`
  (SageMaker SDK v3; with SDK v2 installed instead, the same settings go through its `Estimator`).
* The training image is pushed to ECR (`make image`), and the S3 bucket exists.
* Outside SageMaker, give an IAM role that SageMaker can assume (`role` below, or `$SAGEMAKER_ROLE_ARN`).

Your answers to the template (bucket, region, image, Unity build, instance type, entry point) live in
`project.toml`; every setting left at `None` below is taken from there.""",
    ),
    (
        "md",
        """## 1. Settings

The next cell is tagged `parameters`: `papermill -p NAME VALUE` can set any of them.
`hyperparameters` are config keys of the entry point's `config` dict (and of `trainer.DEFAULT_CONFIG`);
they keep their types (`{"total_timesteps": 5000}` stays a number) and a key the entry point does
not define is refused before anything is submitted.""",
    ),
    ("parameters", None),
    (
        "md",
        """Checking the settings: this reads `project.toml`, fills in the defaults and checks every value
(role ARN, image URI, instance type, hyperparameter names and types) without contacting AWS.""",
    ),
    ("code", None),
    (
        "md",
        """## 2. Upload the Unity build (optional)

The job needs the zipped Unity **Linux** build in the bucket, at the build key shown above. If
`local_build_zip` names a zip on this machine, it is uploaded there first, with a progress bar;
when the same file (same size and checksum) is already in S3, nothing is uploaded.""",
    ),
    ("code", "if local_build_zip:\n    launch.upload_build(settings, local_build_zip)"),
    (
        "md",
        """## 3. Start the training job

`submit` first checks what would make the job fail later: credentials, the bucket (and its region),
the Unity build in S3. Then the SDK uploads `src/` and sends the CreateTrainingJob request, with
metric definitions for the trainer's log lines (`step=1200 episode_reward_mean=0.53 fps=231.4`),
`PYTHONUNBUFFERED=1`, telemetry off, and checkpoints synced to S3.

Where everything goes (`<job-name>` is `<base_job_name>-<YYYYmmddHHMMSS>`):

| What | Where |
|---|---|
| the model (`SM_MODEL_DIR`) | `s3://<bucket>/<job-name>/output/model.tar.gz` |
| other results (`metrics.jsonl`, summaries, Unity logs) | `s3://<bucket>/<job-name>/output/output.tar.gz` |
| checkpoints (`/opt/ml/checkpoints`) | `s3://<bucket>/<base_job_name>/<job-name>/checkpoints/` |
| the uploaded `src/` | `s3://<bucket>/<base_job_name>/<job-name>/input/` (SDK v2: `.../source/`) |

To see everything the job would run without sending anything (entry point, hyperparameters, the
uploaded files, the build, the request): `python launch.py --dry-run` in a terminal.
With `job_name` set, this cell attaches to that job instead of starting a new one.""",
    ),
    (
        "code",
        "job = None if tune else launch.submit(settings) if job_name is None else "
        "launch.attach(settings, job_name)",
    ),
    (
        "md",
        """## 4. Watch it

With `wait = True` this streams the job's logs here until it ends (the same lines are in CloudWatch,
link above). Interrupting the kernel stops the waiting, not the job.""",
    ),
    ("code", "status = launch.wait(job) if job and settings.wait else None"),
    (
        "md",
        """## 5. After the job

The model and output are downloaded into `results_dir/<job-name>/`. With `wait = False` these cells
do nothing: once the job has finished, run the notebook again with `job_name` set to its name.""",
    ),
    ("code", "results = launch.fetch_results(job, dest=results_dir) if job and settings.wait else None"),
    (
        "md",
        """The learning curve: `episode_reward_mean` over training steps, from the run's own `metrics.jsonl`
(or, if the job wrote none, from the metrics SageMaker collected in CloudWatch). For every scalar the
trainer logged, in TensorBoard: `python launch.py --tensorboard <job-name>` in a terminal.""",
    ),
    ("code", "figure = launch.plot_learning_curve(results)"),
    (
        "md",
        """The trained policy, if the entry point saved a TensorFlow SavedModel in its model folder
(random_trainer.py saves none). Loading it needs TensorFlow in this kernel.""",
    ),
    ("code", "model = launch.load_saved_model(results)\nmodel"),
    (
        "md",
        """The model for Unity: every example also writes `model/<behaviour>.onnx`, the file Unity's
ML-Agents inference runs (as `mlagents-learn` would write it), with `<behaviour>.onnx.json` beside it
(job, steps, reward, behaviour, and a check against the trained policy). `fetch_results` put it in
`results_dir/<job-name>/` and checked it (the report is printed above). In the Unity Editor: copy it
into the project's `Assets/` folder, select the agent, and in its **Behavior Parameters** set
**Model** to it (Behavior Name as in the build, Behavior Type Default or Inference Only).""",
    ),
    (
        "code",
        "for path in results.unity_models if results else []:\n    print(launch.unity_instructions(path))",
    ),
    (
        "md",
        """## 6. Many jobs at once: a tuning job

RL results swing with hyperparameters and seeds. With `tune = True` the cells above start no job;
these start a SageMaker hyperparameter tuning job instead: up to `tuning_max_jobs` training jobs
(`tuning_max_parallel_jobs` at a time), each the job above with other values of the keys in
`tuning_ranges`, scored by `tuning_objective` (a metric the trainer declares, read from its log
lines by the same regexes as the console's charts). Ranges: `{"learning_rate": "1e-4:1e-3:log"}`
(numbers; scaling auto, linear, log or reverselog), `{"n_steps": "128,256"}` or a list (values);
`tuning_seeds = 4` runs four seeds of one setting. `project.toml`'s `[tuning]` table holds defaults.
Strategies: Bayesian (default), Random, Grid (values only, every combination) and Hyperband (stops
lagging jobs; needs `tuning_hyperband_max_resource`, the objective lines a whole job prints).

The request is checked offline first; `python launch.py --tune --dry-run` prints it without sending.""",
    ),
    ("tuning", None),
    (
        "code",
        "if tuning_job:\n    tuned = launch.attach_tuning(settings, tuning_job)\n"
        "else:\n    tuned = launch.submit_tuning(tuning) if tune else None",
    ),
    (
        "md",
        """With `wait = True` this waits for the tuning job, printing how many training jobs are done.
Then the results: a table of the training jobs (tuned values, final objective, status), the
objective of each job, the learning curves of the best three and the best job's model, all in
`results_dir/<tuning-job>/` (the model in `best/`).""",
    ),
    ("code", "tuning_status = launch.wait_tuning(tuned) if tuned and settings.wait else None"),
    (
        "code",
        "tuning_results = (\n    launch.fetch_tuning_results(tuned, dest=results_dir)\n"
        '    if tuned and (tuning_status == "Completed" or tuning_job)\n    else None\n)',
    ),
    (
        "code",
        "if tuning_results:\n    from IPython.display import Image, display\n\n"
        '    for png in ("objective_per_job.png", "learning_curves.png"):\n'
        "        if png in tuning_results.files:\n"
        "            display(Image(filename=str(tuning_results.files[png])))",
    ),
]


def build() -> nbformat.NotebookNode:
    cells = []
    for kind, text in CELLS:
        if kind == "md":
            cells.append(new_markdown_cell(text))
        elif kind == "parameters":
            cells.append(new_code_cell(parameters_cell(), metadata={"tags": ["parameters"]}))
        elif kind == "tuning":
            cells.append(new_code_cell(tuning_cell()))
        else:
            cells.append(new_code_cell(text if text is not None else load_cell()))
    for number, cell in enumerate(cells):
        cell["id"] = f"cell-{number:02d}"  # stable ids: regenerating changes nothing
    notebook = new_notebook(cells=cells)
    notebook.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    return notebook


def render() -> str:
    return nbformat.writes(build()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if job_launcher.ipynb is not up to date")
    args = parser.parse_args(argv)
    wanted = render()
    if args.check:
        current = NOTEBOOK.read_text(encoding="utf-8") if NOTEBOOK.is_file() else ""
        if current != wanted:
            print(f"{NOTEBOOK.name} is out of date: run python -m launcher.make_notebook", file=sys.stderr)
            return 1
        return 0
    NOTEBOOK.write_text(wanted, encoding="utf-8")
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
