# Two entry points for a fresh machine (Python 3.10+ with venv):
#   make quick   installs acai and reproduces Table 1 with the quick preset, 3 seeds (README: its time by machine)
#   make test    installs acai and runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,tensorboard]'
	touch $@

install: $(VENV)/.installed

quick: install
	$(VENV)/bin/acai reproduce table1 --preset quick --out results/table1-quick

test: install
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

.PHONY: install quick test
