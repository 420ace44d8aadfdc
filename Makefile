# Set-up and checks. `make demo` and `make test` create .venv and install the locked environment themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo clean

install: $(STAMP)

# basicsr 1.4.2 ships only an sdist whose setup.py needs torch at build time, so torch comes first and
# basicsr is built without build isolation (otherwise pip would fetch a second torch for the build).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(LOCK) torch torchvision numpy cython 'setuptools>=64' wheel
	$(PIP) install -q --no-build-isolation -r $(LOCK)
	$(PIP) install -q --no-build-isolation --no-deps -e .
	touch $@

# One pytest worker per core (pytest-xdist); conftest.py hands out the slow tests first.
test: install
	$(PY) -m pytest -n auto --dist worksteal

test-fast: install
	$(PY) -m pytest -n auto --dist worksteal -m "not slow"

demo: install
	$(PY) tools/demo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
