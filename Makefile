# `make demo` and `make test` set up .venv (created when missing) and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT := demo_out

.PHONY: demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[clip,text,dev]'
	touch $(STAMP)

demo: $(STAMP)
	@echo "NOTE: no trained default model ships yet. This demo converts the bundled reference"
	@echo "      CLIPSep-NIT checkpoint (original layout, small U-Net, RANDOM weights) and runs the"
	@echo "      full pipeline with a stored query vector: the outputs show the pipeline, not"
	@echo "      separation quality."
	mkdir -p $(DEMO_OUT)
	$(BIN)/clipsep-rt convert tests/data/reference/official_small_nit_checkpoint.pt \
		-o $(DEMO_OUT)/reference-nit.safetensors --overwrite
	$(BIN)/clipsep-rt examples/mixture.wav --query-embedding examples/query.npy \
		--checkpoint $(DEMO_OUT)/reference-nit.safetensors -o $(DEMO_OUT) \
		--noise-heads --residual --overwrite
	@ls -l $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/offline.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
