"""Check every template answer before anything is rendered.

cookiecutter renders this file with Jinja before running it. The answers are
pasted in once, as a JSON document inside a JSON string literal, and parsed as
data: no answer is ever spliced into Python source, so quotes, backslashes,
newlines or Jinja syntax in an answer cannot change what this hook does.

The rules themselves are the rendered repository's own: src/template_runtime/rules.py,
loaded from the template's copy (it holds no Jinja, so it needs no rendering). The
launcher, the trainer and the notebook tool check their settings with the same file.

A bad answer stops generation with exit code 1; cookiecutter then removes the
half-made output folder. Each message names the field, the value and the rule.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ANSWERS: dict = json.loads({{ cookiecutter | jsonify(indent=None) | jsonify(indent=None) }})
TEMPLATE_OPTIONS: dict = json.loads({{ _cookiecutter | default({}) | jsonify(indent=None) | jsonify(indent=None) }})

RULES_FILE = ("src", "template_runtime", "rules.py")  # inside the template's project folder


def template_folder(repo_dir: Path) -> Path:
    """The folder cookiecutter renders (found the way cookiecutter finds it: 'cookiecutter' + braces)."""
    opening, closing = "{" * 2, "}" * 2  # written apart: this file is itself rendered by Jinja
    for path in sorted(repo_dir.iterdir()):
        if path.is_dir() and "cookiecutter" in path.name and opening in path.name and closing in path.name:
            return path
    raise FileNotFoundError(f"no template folder in {repo_dir}")


# Where this hook was rendered: the template folder (cookiecutter and cruft render hooks from there).
RENDERED_IN: str = json.loads({{ rendering_dir() | jsonify(indent=None) | jsonify(indent=None) }})


def load_rules() -> ModuleType:
    """rules.py from the template being rendered (a local folder, a git clone or an unpacked zip).

    cookiecutter names the template folder in ``_repo_dir``, relative to where it was started when
    given a relative path (``cookiecutter .``), while this hook runs in the new project's folder;
    cruft (which runs cookiecutter's generate_files itself) passes none. Both render the hooks in
    the template folder, so a relative or missing ``_repo_dir`` is taken from there.
    """
    repo_dir = ANSWERS.get("_repo_dir") or ""
    if not isinstance(repo_dir, str) or not (repo_dir or RENDERED_IN):
        raise RuntimeError("cookiecutter did not pass _repo_dir to the hook: use cookiecutter 2.2 or newer")
    folder = Path(repo_dir) if Path(repo_dir).is_absolute() else Path(RENDERED_IN)
    path = template_folder(folder).joinpath(*RULES_FILE)
    spec = importlib.util.spec_from_file_location("template_rules", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True  # leave no __pycache__ in the user's copy of the template
    sys.modules[spec.name] = module  # dataclasses and friends look the module up by name
    spec.loader.exec_module(module)
    return module


def template_choices(name: str) -> list[str] | None:
    """The choice list cookiecutter.json declares for a variable.

    The rendered answer is only the chosen item; cookiecutter keeps the declared
    options in ``_cookiecutter``. A replayed run only has the old answers there, and
    then there is no list to check against (None).
    """
    declared = TEMPLATE_OPTIONS.get(name)
    return list(declared) if isinstance(declared, list) else None


def validate(answers: dict, rules: ModuleType) -> tuple[list[str], list[str]]:
    """Return (errors, warnings) as ready-to-print sentences."""
    errors, warnings = rules.check_answers(answers)
    messages = [str(error) for error in errors]
    refused = {error.field for error in errors}
    for name in ("aws_region", "algorithm"):
        allowed = template_choices(name)
        if allowed and name not in refused and answers.get(name) not in allowed:
            messages.append(f"{name}={rules.shown(answers.get(name))}: must be one of {', '.join(allowed)}")
    return messages, warnings


def main() -> int:
    errors, warnings = validate(ANSWERS, load_rules())
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if errors:
        print("The template answers have problems; nothing was generated:", file=sys.stderr)
        for message in errors:
            print(f"  - {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
