# Two commands on a fresh machine with Python 3.11:
#   make demo   create .venv, install, run the demo on embedded defaults
#   make test   create .venv, install with the test extras, install or start what the tests
#               need (.ci/setup: PostgreSQL, Mosquitto, Chromium), run every test and check
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install setup lint typecheck imports bench clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the dependency declaration or the constraints change.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/rfq demo

lint: install
	$(BIN)/ruff check rfq_engine dealer_adapters dealer_tools tests bench

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

# PostgreSQL and Mosquitto installed and running, Chromium installed (apt-get, as root or
# through sudo); RFQ_TEST_SKIP_PG=1 / RFQ_TEST_SKIP_MQTT=1 / RFQ_TEST_SKIP_BROWSER=1 skip each.
setup:
	.ci/setup

test: install setup lint typecheck imports
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/engine_overhead.py
	$(BIN)/python bench/audit_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache rfq-demo.db*

# Regenerate the event catalogue in docs/audit.md from rfq_engine/domain/events.py.
docs: install
	$(BIN)/python -c "import pathlib, re; from rfq_engine.domain.events import catalogue_markdown as c; \
p = pathlib.Path('docs/audit.md'); t = p.read_text(); b, e = '<!-- catalogue: generated -->', '<!-- end of catalogue -->'; \
head, rest = t.split(b, 1); p.write_text(head + b + '\n' + c() + e + rest.split(e, 1)[1])"
