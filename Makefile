# The kit's two entry points: `make demo` (the main job, offline) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast venv bench clean

demo: $(STAMP)
	$(PY) -m demo

test: $(STAMP)
	$(PY) -m pytest tests

# The fast subset (unit tests of every stage, under a minute): no sandbox, training, notebook or chromium.
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py

venv: $(STAMP)

# Created on first use: pinned versions from requirements.txt, the kit itself editable.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

clean:
	rm -rf demo_out .pytest_cache
