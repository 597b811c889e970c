# The developer interface: `make help` lists every target.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-installed

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(MAKE) --no-print-directory chromium
	touch $(STAMP)

# The report's browser test drives the system Chromium (playwright's own browsers are never
# downloaded); without root or apt it is left out and that test skips, saying why.
.PHONY: chromium
chromium: ## install Debian's Chromium for the report's browser test, where apt can
	@if command -v chromium >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; \
	else echo "chromium: not root and no sudo; the browser test will skip"; exit 0; fi; \
	if command -v apt-get >/dev/null; then \
		($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium) \
		|| echo "chromium: apt-get failed; the browser test will skip"; \
	else echo "chromium: no apt-get here; the browser test will skip"; fi

.PHONY: venv
venv: $(STAMP) ## create .venv with the Python dependencies

.PHONY: build
build: $(STAMP) ## build the Rust extension in release mode into .venv
	$(VENV)/bin/maturin develop --release -q

.PHONY: build-dev
build-dev: $(STAMP) ## build the Rust extension in debug mode (quick edit loop)
	$(VENV)/bin/maturin develop -q

.PHONY: demo
demo: build ## stream a generated purchase history through the example rules
	$(VENV)/bin/segstream demo

.PHONY: test
test: build ## run the Rust and Python test suites (starts a local Kafka broker for the kafka tests)
	cargo test --release -p segstream-engine
	$(VENV)/bin/pytest -q

.PHONY: test-rust
test-rust: ## run the engine's cargo tests only
	cargo test --release -p segstream-engine

.PHONY: test-py
test-py: build ## run the Python tests only
	$(VENV)/bin/pytest -q

.PHONY: wheel-check
wheel-check: build ## build the release wheel, install it in a fresh venv, run the demo and the quickstart
	bash scripts/wheel_check.sh

# stubtest imports the extension, so lint needs it built (make build or build-dev) first.
.PHONY: lint
lint: $(STAMP) ## fmt, clippy -D warnings, engine docs (missing_docs denied), ruff, mypy --strict, stubtest
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D missing_docs -D rustdoc::broken_intra_doc_links" \
		cargo doc -q -p segstream-engine --no-deps
	$(VENV)/bin/ruff check python tests benches examples
	$(VENV)/bin/ruff format --check python tests benches examples
	$(VENV)/bin/mypy python/segstream
	$(PY) -m mypy.stubtest --mypy-config-file pyproject.toml segstream._segstream

.PHONY: lint-rust-fmt
lint-rust-fmt: ## cargo fmt --check only
	cargo fmt --all -- --check

.PHONY: fmt
fmt: $(STAMP) ## format Rust and Python
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benches examples
	$(VENV)/bin/ruff check --fix python tests benches examples

.PHONY: report-screenshot
report-screenshot: build ## write docs/img/report.png: the HTML report of the demo's history, in Chromium
	$(PY) scripts/report_screenshot.py

.PHONY: bench
bench: build ## engine benchmarks against NumPy/pandas/Polars/Pathway (prints ratios)
	$(PY) -m pip install -q -r benches/requirements.txt
	$(PY) benches/engine_throughput.py

.PHONY: bench-bulk
bench-bulk: build ## bulk re-segmentation against DuckDB and Polars
	$(PY) benches/bulk_vs_peers.py

.PHONY: bench-stream
bench-stream: build ## worker vs Kafka client ceilings, Quix Streams, Pathway, plain Faust (ARGS="--runs 3")
	$(PY) -m pip install -q -r benches/requirements.txt
	$(PY) benches/stream_throughput.py $(ARGS)

.PHONY: kafka-start
kafka-start: ## start a local Apache Kafka broker on 127.0.0.1:9092 (fetched with Maven)
	bash scripts/kafka.sh start

.PHONY: kafka-stop
kafka-stop: ## stop the local Kafka broker
	bash scripts/kafka.sh stop

.PHONY: clean
clean: ## remove build outputs and the venv
	cargo clean
	rm -rf $(VENV) .pytest_cache .hypothesis
