# procore-hotfolder: make demo | make test | make test-fast | make lint | make bench | make deb |
# make test-deb
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean deb test-deb

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/procore-hotfolder demo

# The whole suite in 4 processes (pytest-xdist): its tests mostly wait on daemons, sockets and
# timers, so 4 share 2 cores well. The slow scenarios are collected first (tests/conftest.py)
# and each process is handed one test at a time, so the processes run out of work together.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 4 --maxschedchunk 1

# The edit loop: unit and emulator tests, in 2 processes (about 20 s; 30 in one).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests/unit tests/emulator

lint: $(STAMP)
	$(BIN)/ruff check daemon tests packaging
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.run_all

# The Debian package: dist/procore-hotfolder_<version>_all.deb (version from pyproject.toml).
# Needs python3 (>= 3.11) with pip, PyPI or pip's cache, and dpkg-deb (Debian's dpkg).
# Optional: DEB_VERSION=1.2.3 DEB_MAINTAINER="IT <it@example.com>".
deb:
	@command -v dpkg-deb >/dev/null || { echo "make deb needs dpkg-deb: apt-get install dpkg" >&2; exit 1; }
	$(PYTHON) packaging/deb/build.py $(if $(DEB_VERSION),--version '$(DEB_VERSION)') \
	    $(if $(DEB_MAINTAINER),--maintainer '$(DEB_MAINTAINER)')

# The package's tests (not in make test): its contents, Lintian, and install, upgrade, remove
# and purge on a systemd booted in systemd-nspawn. As root, with
# apt-get install dpkg-dev lintian systemd-container
test-deb: $(STAMP)
	$(BIN)/python -m pytest -q -m deb tests/packaging

clean:
	rm -rf $(VENV) build dist *.egg-info daemon/*.egg-info
