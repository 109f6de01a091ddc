# Two commands (README.md): `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.seedgrid-installed

.PHONY: run test install dev-checkpoints bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: a bare `torch` requirement would pull a CUDA build of several GB
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0 -c constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

dev-checkpoints: $(STAMP)
	$(BIN)/seedgrid models build-dev

# the local network until Ctrl-C; a bounded run: make run ARGS="--epochs 2"
run: dev-checkpoints
	$(BIN)/seedgrid up $(ARGS)

test: dev-checkpoints
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: dev-checkpoints
	$(BIN)/python bench/generation_overhead.py

clean:
	rm -rf $(VENV) .seedgrid
