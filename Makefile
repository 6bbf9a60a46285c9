# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR := demo
# Two workers that take one test at a time (tests/conftest.py puts the longest first).
PYTEST := $(PY) -m pytest -n 2 --maxschedchunk 1 -p no:benchmark

.PHONY: demo test test-fast clean

$(VENV)/installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Bake the default answers into demo/ and train the baked project for a few epochs.
demo: $(VENV)/installed
	$(PY) -m cookiecutter --no-input --overwrite-if-exists --output-dir $(DEMO_DIR) .
	cd $(DEMO_DIR)/my_training_project && ../../$(PY) train.py --n_epoch 5 --warmup_steps 100

# The whole suite (CI runs this). Exit 5 (no tests collected) is a failure, not a pass.
test: $(VENV)/installed
	$(PYTEST); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# Everything except the slow runs of generated projects.
test-fast: $(VENV)/installed
	$(PYTEST) -m "not slow"

clean:
	rm -rf $(VENV) $(DEMO_DIR)
