# claimdesk — the two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench soak system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: create .venv, install claimdesk and serve the embedded demo on http://127.0.0.1:8080
##      (another port: make run PORT=8081)
run: $(STAMP)
	$(BIN)/claimdesk serve $(if $(PORT),--port $(PORT))

system-deps:
	./scripts/system-deps.sh
	./scripts/test-assets.sh

## test: install what the tests need, lint, type-check, check layers, run the suite
test: $(STAMP) system-deps lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: benchmarks (numbers, not tests); results in bench/results.json
bench: $(STAMP) system-deps
	$(BIN)/python bench/bench_intake.py --rates 50,100,200,500 --out bench/results.json
	$(BIN)/python bench/bench_intake.py --assignment round_robin --rates 100,200 --out bench/results.json
	$(BIN)/python bench/bench_click_burst.py --out bench/results.json
	$(BIN)/python bench/bench_click_burst.py --split --out bench/results.json
	$(BIN)/python bench/bench_intake_pg.py --out bench/results.json
	$(BIN)/python -W ignore::DeprecationWarning bench/bench_clock.py --out bench/results.json
	$(BIN)/python bench/bench_slack.py --out bench/slack.json
	$(BIN)/python bench/bench_wecom.py --out bench/wecom.json
	$(BIN)/python bench/bench_imap.py --out bench/results.json
	$(BIN)/python bench/bench_dingtalk.py --out bench/results.json
	$(BIN)/python bench/bench_platforms.py --out bench/results.json
	$(BIN)/python bench/bench_routing.py --out bench/results.json
	$(MAKE) soak

## soak: kill -9 during a 1,000-webhook burst and a 30 %-failing Slack, SQLite and PostgreSQL
##       (several minutes; quick: .venv/bin/python bench/soak.py --webhooks 200 --kills 5 --fault-webhooks 100 --claims 20)
soak: $(STAMP) system-deps
	$(BIN)/python bench/soak.py --out bench/results.json
	$(BIN)/python bench/soak.py --assignment round_robin --webhooks 300 --kills 8 --fault-webhooks 50 --claims 10 --out bench/results.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
