# Two entry points: `make run` (local stack, no Docker) and `make test` (the whole suite). Both set up .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data
MODELS ?= models
PORT ?= 8080
GRPC_PORT ?= 8500
REST_PORT ?= 8501
MNIST_NPZ := $(SHARED_DATA)/mnist/mnist-5k-train-10k-test.npz
NAB_TRAIN := $(SHARED_DATA)/nab/data/artificialNoAnomaly/art_daily_small_noise.csv
# With the shared data present, quick models train on it (offline); otherwise MNIST downloads with Keras and the
# anomaly model learns from the built-in synthetic sensors.
TRAIN_DATA := $(if $(wildcard $(MNIST_NPZ)),--mnist-data $(MNIST_NPZ)) $(if $(wildcard $(NAB_TRAIN)),--anomaly-data $(NAB_TRAIN))

.PHONY: venv models run test lint protos bench bench-streams bench-peers bench-train bench-nab bench-photos secrets

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[train,gateway,modelserver,client,test]'
	# tensorflow-serving-api's metadata asks for the full `tensorflow` package; tensorflow-cpu provides it.
	$(BIN)/pip install --quiet --no-deps tensorflow-serving-api==2.21.0
	touch $@

venv: $(BIN)/.installed

models: venv
	$(BIN)/python -m training all --quick --if-missing --out $(MODELS) $(TRAIN_DATA)

run: models
	$(BIN)/python -m serving.stack --models $(MODELS) --port $(PORT) --grpc-port $(GRPC_PORT) --rest-port $(REST_PORT)

# Files docker-compose.yml mounts as secrets: an API key named "web" (printed once: keep it) and Grafana's admin
# password. Existing files are kept. Add or rotate keys with `python -m serving.gateway.apikeys` (docs/security.md).
secrets: venv
	mkdir -p secrets
	test -f secrets/grafana_admin_password || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(24))" > secrets/grafana_admin_password
	test -f secrets/api_keys.json || $(BIN)/python -m serving.gateway.apikeys --file secrets/api_keys.json add web

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv lint
	$(BIN)/python -m pytest

protos: venv
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. serving/protos/tfs_lite.proto serving/protos/tfs_config.proto

# Benchmarks; results and analysis in bench/RESULTS.md. Flags through BENCH_ARGS, e.g. BENCH_ARGS="--duration 2".
# `bench` needs wrk (Debian package, listed in .ci/apt-packages.txt) and trained models (the `models` target).
bench: models
	$(BIN)/python -m bench --models $(MODELS) $(if $(wildcard $(MNIST_NPZ)),--mnist-data $(MNIST_NPZ)) $(BENCH_ARGS)
	$(BIN)/python -m bench.streams --models $(MODELS) $(BENCH_STREAMS_ARGS)

# Stream appends at 16/64 concurrent streams on both stores, and the store's memory for 100,000 streams (needs
# redis-server); also the last step of `bench`. Flags through BENCH_STREAMS_ARGS, e.g. "--memory-streams 1000".
bench-streams: models
	$(BIN)/python -m bench.streams --models $(MODELS) $(BENCH_STREAMS_ARGS)

# Our gateway against KServe (transformer, REST and gRPC), BentoML (adaptive batching) and the model server alone,
# side by side in one run; the peers' venvs are built on first use under bench-results/peers-venvs/ (minutes).
bench-peers: models
	$(BIN)/python -m bench.peers --models $(MODELS) $(if $(wildcard $(MNIST_NPZ)),--mnist-data $(MNIST_NPZ)) $(BENCH_ARGS)

bench-train: venv
	$(BIN)/python -m bench.train $(if $(wildcard $(MNIST_NPZ)),--data $(MNIST_NPZ)) $(if $(wildcard $(NAB_TRAIN)),--anomaly-data $(NAB_TRAIN)) $(BENCH_ARGS)

# The anomaly detector on the NAB corpus: one model per file learnt from NAB's probationary rows, served by the
# local stack, scored with NAB's rules (bench/nab/). About 10 minutes on 2 cores; results in bench-results/nab/.
bench-nab: venv
	$(BIN)/python -m bench.nab --nab $(SHARED_DATA)/nab --out bench-results/nab $(BENCH_ARGS)

# Photo-like digits vs clean PNGs, with each training and preprocessing lever measured on its own.
bench-photos: venv
	$(BIN)/python -m bench.photo_accuracy $(if $(wildcard $(MNIST_NPZ)),--data $(MNIST_NPZ)) $(BENCH_ARGS)
