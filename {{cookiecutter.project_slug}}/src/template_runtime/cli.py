"""The trainer's command line, answered before anything heavy is imported.

``python src/ppo_trainer.py --help`` should not wait for TensorFlow (6-24 s): trainer.py calls
``answer_early()`` as the first thing it does, and the training scripts import trainer.py before
TensorFlow. If the program being run is an entry point (template_runtime/entry_point.py), its
``config`` and trainer.py's ``DEFAULT_CONFIG`` are read from their source, with each key's comment:

* ``--help`` prints every key with its type, default and comment, and exits 0;
* an unknown key gets "did you mean" and exit 2, a value of the wrong type its reason and exit 2,
  without a traceback, before TensorFlow or a Unity player starts.

Everything else (the values themselves) is Trainer.__init__'s job. Standard library only.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from template_runtime.config import ConfigError, coerce
from template_runtime.entry_point import EntryPointError, read_defaults, read_entry_point

RUN_FLAGS = {
    "--local": "run locally even inside a SageMaker job (results in runs/<name>-<time>/)",
    "--run_id": "NAME: a local run in runs/NAME/ (see --resume)",
    "--resume": "continue the local run --run_id NAME from its latest checkpoint, in place",
}
"""Flags of a run, not config keys: they never become hyperparameters."""


def answer_early(argv: Sequence[str] | None = None, main_file: str | None = None) -> None:
    """Print help or refuse a typo (exit 0 / 2) if ``main_file`` is an entry point; else return."""
    argv = list(sys.argv[1:] if argv is None else argv)
    main_file = main_file if main_file is not None else getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file:
        return
    path = Path(main_file)
    try:
        info = read_entry_point(path)
        defaults, default_comments = read_defaults(path.parent)
    except EntryPointError:
        return  # not an entry point (a test runner, a notebook): nothing to answer here
    install_error_hook(path.name)
    known = {**defaults, **info.config}
    if "-h" in argv or "--help" in argv:
        print(help_text(path.name, info.config, info.comments, defaults, default_comments))
        raise SystemExit(0)
    problem = check_arguments(argv, known)
    if problem:
        print(f"{path.name}: error: {problem}\n(--help lists every key)", file=sys.stderr)
        raise SystemExit(2)


def check_arguments(argv: Sequence[str], known: Mapping[str, object]) -> str | None:
    """The first problem with ``--key value`` arguments (unknown key, wrong type), or None."""
    i = 0
    while i < len(argv):
        argument = argv[i]
        if not argument.startswith("--"):
            return f"{argument!r} is not a --key: arguments come as --key value"
        name, has_value, value = argument[2:].partition("=")
        if name.startswith("sagemaker_"):  # SageMaker's own, dropped later
            i += 1 if has_value or i + 1 >= len(argv) or argv[i + 1].startswith("--") else 2
            continue
        if f"--{name}" in ("--local", "--resume"):
            i += 1
            continue
        if not has_value:
            if i + 1 >= len(argv):
                return f"--{name} needs a value"
            value, i = argv[i + 1], i + 1
        i += 1
        if name == "run_id":
            continue
        if name not in known:
            return unknown_key_message(name, known)
        try:
            coerce(name, value, known[name], "command line")
        except ConfigError as error:
            return str(error)
    return None


def unknown_key_message(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, [*known, "local", "run_id", "resume"], n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(f'--{c}' for c in close)}?" if close else ""
    return f"unknown key --{name}{hint}"


def help_text(
    script: str,
    config: Mapping[str, object],
    comments: Mapping[str, str],
    defaults: Mapping[str, object],
    default_comments: Mapping[str, str],
) -> str:
    """Every key with its type, default and comment: the script's own keys first."""
    own = {key: config[key] for key in config if key not in defaults}
    overridden = {key: config[key] for key in config if key in defaults}
    runtime = {key: overridden.get(key, value) for key, value in defaults.items()}
    lines = [
        f"usage: python src/{script} [--local] [--run_id NAME [--resume]] [--key value ...]",
        "",
        "Every key below can be given as --key value (or as a SageMaker hyperparameter), keeping its type.",
        "",
        "run:",
        *(_entry(flag, help) for flag, help in RUN_FLAGS.items()),
    ]
    if own:
        lines += ["", f"{script}:"]
        lines += [_key(key, value, comments.get(key, "")) for key, value in own.items()]
    lines += ["", "env, build and output (trainer.DEFAULT_CONFIG):"]
    for key, value in runtime.items():
        note = comments.get(key) if key in overridden else None
        lines.append(_key(key, value, note or default_comments.get(key, ""), key in overridden))
    return "\n".join(lines)


def _key(key: str, value: object, comment: str, set_by_script: bool = False) -> str:
    kind = type(value).__name__ if value is not None else "any"
    default = f"(default {value!r}" + (", set by this script)" if set_by_script else ")")
    return _entry(f"--{key} {kind.upper()}", f"{default} {comment}".strip())


def _entry(left: str, right: str) -> str:
    indent = " " * 34
    body = textwrap.fill(right, width=110, initial_indent=indent, subsequent_indent=indent)[34:]
    return f"  {left:<31} {body}" if len(left) < 32 else f"  {left}\n{indent}{body}"


RUN_ID_CHARACTERS = "letters, digits, '.', '_' and '-' (not starting with '.' or '-'), at most 100"


def split_run_flags(argv: Sequence[str]) -> tuple[list[str], str, bool]:
    """``argv`` without ``--run_id NAME`` and ``--resume``, and those two values."""
    rest, run_id, resume, i = [], "", False, 0
    argv = list(argv)
    while i < len(argv):
        argument = argv[i]
        if argument == "--resume":
            resume = True
        elif argument == "--run_id" or argument.startswith("--run_id="):
            if "=" in argument:
                run_id = argument.split("=", 1)[1]
            elif i + 1 < len(argv):
                run_id, i = argv[i + 1], i + 1
            else:
                raise ConfigError("command line: --run_id needs a NAME")
            if not _valid_run_id(run_id):
                raise ConfigError(f"command line: --run_id {run_id!r} must use {RUN_ID_CHARACTERS}")
        else:
            rest.append(argument)
        i += 1
    if resume and not run_id:
        raise ConfigError("command line: --resume needs --run_id NAME (the run to continue, in runs/NAME/)")
    return rest, run_id, resume


def _valid_run_id(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", name) is not None


USER_ERRORS = {
    "ConfigError",
    "UnityBuildError",
    "UnityEnvOptionError",
    "UnityStartError",
    "EntryPointError",
    "RuleError",
}
"""Errors whose message already says what to change: shown as one line, not a traceback."""


def install_error_hook(script: str) -> None:
    """Show a user error (a bad value, a missing build, ...) as ``script: error: message``; in a
    SageMaker job also write it to /opt/ml/output/failure, which becomes the job's FailureReason."""
    previous = sys.excepthook

    def hook(kind, error, trace):
        if not any(cls.__name__ in USER_ERRORS for cls in kind.__mro__):
            return previous(kind, error, trace)
        message = f"{script}: error: {error}"
        print(message, file=sys.stderr)
        if os.environ.get("SM_TRAINING_ENV") or os.environ.get("SM_MODEL_DIR"):
            failure = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
            try:
                failure.parent.mkdir(parents=True, exist_ok=True)
                failure.write_text(message[:1024] + "\n", encoding="utf-8")  # FailureReason's limit
            except OSError:
                pass
        return None

    sys.excepthook = hook
