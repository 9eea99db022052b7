# Vigil: `make demo` installs everything the README's tour uses into .venv and runs the demo; `make test` runs
# the whole suite. Only the scale-out engines (Ray, the Kafka client: extra `scale`) are left to `make test` or
# `pip install 'vigil[scale]'`, as the commands that need them say.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install demo test lint bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "Vigil needs $(PYTHON) (set PYTHON=... to use another 3.11+)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[deep,tune,service,network,vision,pretrained,export]'
	@touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[deep,tune,service,network,vision,pretrained,export,scale,plant,test]'
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vigil demo --output vigil-demo --examples vigil-demo/tour

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/tables.py --dataset skab

clean:
	rm -rf $(VENV) vigil-demo .pytest_cache
