# The two commands of the README: `make run` and `make test`. Everything they need is
# installed from here: the virtualenv and Python packages, and (on first use) the Kafka
# broker jars into a cache outside git (app/local_kafka.py).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

## Run Flare (API + worker) on port 8080, with a local broker when none is configured.
## A one-machine set-up: subscribers on this machine (private targets) are allowed unless
## FLARE_ALLOW_PRIVATE_TARGETS says otherwise; Flare's first log line says which.
run: $(STAMP)
	FLARE_ALLOW_PRIVATE_TARGETS=$${FLARE_ALLOW_PRIVATE_TARGETS:-true} \
	  $(BIN)/flare with-kafka --data-dir var/kafka -- $(BIN)/flare start

## Run every test: unit tests, then integration tests against a real broker.
test: $(STAMP)
	$(BIN)/python -m pytest

## Unit tests only (no broker).
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

## Benchmarks; results in bench/results/latest.json and docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var
