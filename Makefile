# The template's own commands. Everything runs from a fresh clone with Python 3.11, git and make.
#   make test   create .venv-dev from requirements-dev.txt and run the whole template suite:
#               rendering, validation, and every baked project's own tests (slow ones included)
#   make demo   render the template with its defaults into work/demo and run the rendered
#               repository's `make demo` (the random example on the simulated Unity build)

PYTHON ?= python3.11
DEV_VENV ?= .venv-dev
DEMO_DIR ?= work/demo

.PHONY: test test-quick demo clean

$(DEV_VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(DEV_VENV)
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(DEV_VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

test: $(DEV_VENV)/.installed
	$(DEV_VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-quick: $(DEV_VENV)/.installed
	$(DEV_VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(DEV_VENV)/.installed
	$(DEV_VENV)/bin/cookiecutter --no-input --overwrite-if-exists --output-dir $(DEMO_DIR) .
	$(MAKE) -C $(DEMO_DIR)/unity_sagemaker_rl demo

clean:
	rm -rf work .venvs
