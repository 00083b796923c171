# Every target installs what it needs into .venv at the repository root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKSPACE ?= runs/demo
INPUT ?=
STAMP := $(VENV)/.alienstay-installed

.PHONY: install demo test test-gpu bench bench-gpu notebook figures serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first and pinned: a bare `torch` requirement can pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/alienstay demo --workspace $(WORKSPACE) $(if $(INPUT),--input $(INPUT),)

test: $(STAMP)
	bash scripts/browser-deps.sh
	$(BIN)/python -m pytest -q

# Every test that runs a model, on CUDA (tests/conftest.py); skipped with the reason where there is no GPU.
# GPU_WORKERS=N spreads them over N pytest-xdist workers (each gets its share of the cores).
GPU_WORKERS ?=
test-gpu: $(STAMP)
	ALIENSTAY_TEST_DEVICE=cuda $(BIN)/python -m pytest -q -m gpu $(if $(GPU_WORKERS),-n $(GPU_WORKERS),)

bench-gpu: $(STAMP)
	$(BIN)/python -m benchmarks.bench_gpu

bench: $(STAMP)
	$(BIN)/python -m benchmarks

notebook: $(STAMP)
	$(BIN)/python scripts/run_notebook.py notebooks/alienstay.ipynb

# The docs' figures from the sample photos (downscaled, attribution in docs/figures/ATTRIBUTION.md), and docs/layout.md
figures: $(STAMP)
	$(BIN)/python scripts/make_figures.py $(if $(INPUT),--input $(INPUT),)
	$(BIN)/python scripts/layout_doc.py
	$(BIN)/python scripts/models_doc.py

serve: $(STAMP)
	$(BIN)/alienstay serve --workspace $(WORKSPACE)

clean:
	rm -rf $(VENV) runs .pytest_cache
