# cube-extract: the two commands first.
#   make demo   build, start the bundled Cube simulator, extract a month of 3 campaigns into ./out
#   make test   every test: Rust unit + integration (against the simulator and an S3 server), Python interop
SHELL := /bin/bash
CARGO ?= cargo
VENV ?= .venv
PY := $(VENV)/bin/python
# The Airflow provider's tests, on Airflow 2.11 and 3.3 (Airflow 2 pins Flask 2, moto_server needs Flask 3).
AIRFLOW2_VENV ?= .venv-airflow2
AIRFLOW3_VENV ?= .venv-airflow3
# Dagster, for the Dagster Pipes example's tests (tests/dagster).
DAGSTER_VENV ?= .venv-dagster
# Prefect 3, for the Prefect recipe's tests (tests/prefect).
PREFECT_VENV ?= .venv-prefect
# maturin, which builds the wheel (make wheel, tests/wheel).
BUILD_VENV ?= .venv-build
# `make wheel` builds a release wheel; the tests build a dev one (the release build is 12 minutes).
WHEEL_PROFILE ?= release
# DuckDB's delta extension is offline only for DuckDB 1.5.5 (.venv has DuckDB 2): its own venv.
DUCKDB_DELTA_VENV ?= .venv-duckdb-delta

.PHONY: demo test build wheel wheel-dev venv venv-airflow venv-duckdb-delta venv-build venv-prefect venv-dagster lint bench clean fuzz

demo: build
	scripts/demo.sh

test: build venv venv-airflow venv-duckdb-delta venv-build venv-prefect venv-dagster wheel-dev
	$(CARGO) fmt --all -- --check
	$(CARGO) test --all-targets
	CUBE_EXTRACT_BIN=target/debug/cube-extract CUBE_SIM_BIN=target/debug/examples/cube_sim \
		DUCKDB_DELTA_PYTHON=$(DUCKDB_DELTA_VENV)/bin/python $(PY) -m pytest -q tests/interop
	for venv in $(AIRFLOW3_VENV) $(AIRFLOW2_VENV); do \
		$$venv/bin/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall target/wheels-dev/*.whl && \
		CUBE_EXTRACT_BIN=target/debug/cube-extract CUBE_SIM_BIN=target/debug/examples/cube_sim \
			$$venv/bin/python -m pytest -q -p no:cacheprovider tests/airflow || exit 1; \
	done
	MATURIN=$(BUILD_VENV)/bin/maturin $(PY) -m pytest -q -p no:cacheprovider tests/wheel
	CUBE_EXTRACT_BIN=target/debug/cube-extract $(PREFECT_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/prefect
	CUBE_EXTRACT_BIN=target/debug/cube-extract $(DAGSTER_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/dagster

# The wheel (pip install target/wheels/cube_extract-*.whl): the binary and the `cube_extract` package.
wheel: venv-build
	$(BUILD_VENV)/bin/maturin build --profile $(WHEEL_PROFILE) --out target/wheels

# A dev-profile wheel for the tests (the Airflow provider is tested as installed from it).
wheel-dev: venv-build
	rm -rf target/wheels-dev
	$(BUILD_VENV)/bin/maturin build --profile dev --out target/wheels-dev

build:
	$(CARGO) build --all-targets

# The Python packages the interop tests read the output with (DuckDB, Polars, PyArrow, Spark).
venv: $(VENV)/.installed
$(VENV)/.installed: tests/interop/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
	touch $@

# DuckDB 1.5.5 and its delta extension, for reading Delta tables with delta_scan (tests/interop).
venv-duckdb-delta: $(DUCKDB_DELTA_VENV)/.installed
$(DUCKDB_DELTA_VENV)/.installed: tests/interop/requirements-duckdb-delta.txt
	python3 -m venv $(DUCKDB_DELTA_VENV)
	$(DUCKDB_DELTA_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements-duckdb-delta.txt
	touch $@

venv-dagster: $(DAGSTER_VENV)/.installed
$(DAGSTER_VENV)/.installed: tests/dagster/requirements.txt
	python3 -m venv $(DAGSTER_VENV)
	$(DAGSTER_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/dagster/requirements.txt
	touch $@

venv-prefect: $(PREFECT_VENV)/.installed
$(PREFECT_VENV)/.installed: tests/prefect/requirements.txt
	python3 -m venv $(PREFECT_VENV)
	$(PREFECT_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/prefect/requirements.txt
	touch $@

venv-build: $(BUILD_VENV)/.installed
$(BUILD_VENV)/.installed: python/requirements-build.txt
	python3 -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install --quiet --disable-pip-version-check -r python/requirements-build.txt
	touch $@

# Airflow 3.3 and 2.11, for the provider's and the DAG examples' tests (tests/airflow).
venv-airflow: $(AIRFLOW3_VENV)/.installed $(AIRFLOW2_VENV)/.installed
$(AIRFLOW3_VENV)/.installed: tests/airflow/requirements-3.txt tests/airflow/constraints-3.txt
	python3 -m venv $(AIRFLOW3_VENV)
	$(AIRFLOW3_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/airflow/requirements-3.txt -c tests/airflow/constraints-3.txt
	touch $@
$(AIRFLOW2_VENV)/.installed: tests/airflow/requirements-2.txt tests/airflow/constraints-2.txt
	python3 -m venv $(AIRFLOW2_VENV)
	$(AIRFLOW2_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/airflow/requirements-2.txt -c tests/airflow/constraints-2.txt
	touch $@

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Fuzzes page parsing and decoding (arbitrary bytes as a page body) for FUZZ_SECONDS.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain provide them.
FUZZ_SECONDS ?= 30
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p fuzz/corpus/page
	cp -n fuzz/seeds/* fuzz/corpus/page/ 2>/dev/null || true
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none page -- -max_total_time=$(FUZZ_SECONDS)

# Benchmark (a measurement, not a test: exits 0 whatever the targets say): release build, a 300k-record
# simulated dataset; cube-extract vs a Python baseline vs DuckDB/Polars conversion only. Writes
# target/bench-results.md. BENCH_ARGS=--quick for a smoke run in seconds.
BENCH_ARGS ?=
bench: venv
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r benches/requirements.txt
	$(CARGO) build --release --bin cube-extract --example cube_sim --example rewrite_floor
	$(PY) benches/run_bench.py $(BENCH_ARGS)

clean:
	rm -rf out target/demo-report.json
