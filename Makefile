# maskdetect: every target sets up what it needs first.
#   make serve   serve the committed model (its .tflite) at http://localhost:9696 (the main job)
#   make check   the fast loop: unit tests only, under a minute
#   make test    run the whole test suite
#   make bench   measure the service's latency, throughput, memory and cold start
#   make data    download, verify and lay out the leakage-safe split under data/
#   make weights download (or copy from $MASKDETECT_DETECTOR_SOURCE) and check the face detector's weights

SHELL := /bin/bash
PYTHON ?= python3
PIPENV_VERSION := 2026.10.3
TOOLS := .tools
PIPENV := $(TOOLS)/bin/pipenv
VENV := .venv
INSTALLED := $(VENV)/.installed

export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1

.DEFAULT_GOAL := help
.PHONY: help env weights serve check test bench data split faces data-files train export notebooks lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(PIPENV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check pipenv==$(PIPENV_VERSION)

$(INSTALLED): Pipfile.lock pyproject.toml | $(PIPENV)
	$(PIPENV) install --deploy --dev
	@touch $@

env: $(INSTALLED)  ## create .venv from Pipfile.lock (Python 3.11)

weights: env  ## download the face detector's weights (YuNet, sha256-checked) into deployment/weights/
	$(VENV)/bin/maskdetect weights

# The .tflite on LiteRT by default; MODEL_PATH=deployment/maskdetect.h5 serves the Keras model (TensorFlow).
MODEL := $(or $(MODEL_PATH),deployment/maskdetect.tflite)
serve: env weights  ## serve the committed model's .tflite at http://localhost:9696 (nginx in front of gunicorn; MODEL_PATH=deployment/maskdetect.h5: the .h5)
	@test -f "$(MODEL)" || { echo "make serve: no model at $(MODEL): train one with 'make train' and convert it" \
	      "with 'make export', or serve another file with 'make serve MODEL_PATH=FILE'" >&2; exit 1; }
	MODEL_PATH="$(MODEL)" $(VENV)/bin/maskdetect serve

check: env weights  ## the fast loop: the package's layers, then the unit tests (no server, browser, notebook or training), under a minute
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -m "not slow"

test: env weights  ## the package's layers, then the whole test suite
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

bench: env weights  ## benchmark the service as served (the .tflite), the .h5 beside it, into benchmarks/RESULTS.md (~10 min; QUICK=1: ~1 min)
	$(VENV)/bin/python benchmarks/bench.py $(if $(QUICK),--quick) $(BENCH_ARGS)

data: env weights  ## verify the source and lay out data/{train,validation,test}/ from data/splits.csv
	$(VENV)/bin/maskdetect data

data-files: env  ## the original's leaky file-level split, in data/files-split/
	$(VENV)/bin/maskdetect data --strategy files

split: env  ## recompute data/splits.csv (near-duplicate grouping, ~70 s)
	$(VENV)/bin/maskdetect data split

faces: env weights  ## recompute data/faces.csv and data/maskwear-faces.csv (YuNet face boxes for training crops, a minute)
	$(VENV)/bin/maskdetect data faces
	$(VENV)/bin/maskdetect data faces --set maskwear

train: data  ## train the deployment model into deployment/ (maskdetect.train.DEPLOYED)
	$(VENV)/bin/maskdetect train

export: data  ## convert the deployment model to deployment/maskdetect.tflite, checked on data/test (ONNX too: ONNX=1)
	$(VENV)/bin/maskdetect export $(if $(ONNX),--onnx)

NOTEBOOKS := $(sort $(wildcard notebooks/nb*.ipynb))
notebooks: data  ## re-run every notebook in full, in place (long: it trains every model)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(VENV)/bin/papermill --cwd notebooks "$$nb" "$$nb" || exit 1; \
	done

lock: | $(PIPENV)  ## re-resolve Pipfile.lock after editing Pipfile
	$(PIPENV) lock

# The service image (documentation/deployment.md, "Docker"): docker when an engine answers,
# else podman + buildah (installed, and the base image built, when missing).
.PHONY: docker docker-run docker-check docker-requirements
docker: weights  ## build the service image (maskdetect:latest)
	deployment/docker/build.sh

docker-run: weights  ## serve the image at http://localhost:9696 (builds it if needed)
	deployment/docker/run.sh

docker-check: weights  ## build the image, run it, check /health, /predict and /detect, remove the container
	deployment/docker/check.sh

docker-requirements: env  ## after `make lock`: pin the images' packages (deployment/docker/ and deployment/aws/requirements.txt)
	$(VENV)/bin/python deployment/docker/requirements.py

clean:  ## remove the environments (data/ stays)
	rm -rf $(VENV) $(TOOLS)
