# `make demo` and `make test` set up .venv (created when missing) and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT := demo_out

.PHONY: demo test bench gpu-check clean live-audio-deps browser-deps corpus

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[clip,text,dev,report,distributed]'
	touch $(STAMP)

# The bundled default model (clipsep_rt/model/weights) separates a shipped mixture of two held-out
# corpus sounds (a violin phrase and a cow) by text, and writes the audio plus an HTML report
# (spectrograms, players, SDRi against the shipped ground truth, robustness to queries).
DEMO_QUERIES := -q "violin" -q "fiddle" -q "a man is playing the violin in a concert hall" -q "car engine"
demo: $(STAMP)
	mkdir -p $(DEMO_OUT)
	$(BIN)/clipsep-rt examples/violin_cow/mixture.wav $(DEMO_QUERIES) -o $(DEMO_OUT) --noise-heads --residual \
		--report $(DEMO_OUT)/report --reference examples/violin_cow/violin.wav \
		--interference examples/violin_cow/cow.wav --overwrite
	@echo "demo: open $(DEMO_OUT)/report/index.html in a browser"

test: $(STAMP) live-audio-deps browser-deps
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# The live-audio tests run real PortAudio streams on a JACK dummy server: they need jackd,
# jack_lsp/jack_connect and libportaudio2. Installed here when missing and we are root with
# apt-get; otherwise those tests skip (and say why), and everything else still runs.
LIVE_PACKAGES := jackd2 libportaudio2
live-audio-deps:
	@if command -v jackd >/dev/null && command -v jack_connect >/dev/null && command -v jack_lsp >/dev/null \
		&& { ldconfig -p 2>/dev/null | grep -q libportaudio.so.2; }; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "make test: jackd2/libportaudio2 missing and not root with apt-get: the live-audio tests will skip"; exit 0; fi; \
	echo "make test: installing $(LIVE_PACKAGES) for the live-audio tests"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q --no-install-recommends $(LIVE_PACKAGES) >/dev/null \
		|| { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(LIVE_PACKAGES) >/dev/null; } \
		|| { echo "make test: could not install $(LIVE_PACKAGES): the live-audio tests will skip"; exit 0; }; \
	command -v jack_connect >/dev/null || apt-get install -y -q --no-install-recommends jack-example-tools >/dev/null \
		|| echo "make test: no jack_connect (jack-example-tools): the JACK tests will skip"

# The report test renders `separate --report` pages in headless Chromium. Installed here when
# missing and we are root with apt-get; otherwise that test skips (and says why).
BROWSER_PACKAGES := chromium
browser-deps:
	@if command -v chromium >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "make test: chromium missing and not root with apt-get: the browser rendering test will skip"; exit 0; fi; \
	echo "make test: installing $(BROWSER_PACKAGES) for the browser rendering test"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES) >/dev/null \
		|| { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; } \
		|| echo "make test: could not install $(BROWSER_PACKAGES): the browser rendering test will skip"

bench: $(STAMP)
	$(BIN)/python benchmarks/offline.py

# Everything that needs a GPU in one command (< 8 min on one H100/H200): CUDA tests, offline and
# streaming speed, the GPU engines, training throughput; reports in $(OUT)/gpu_check.{md,json}.
# GPU_CHECK_ARGS=--dry-run runs the same plumbing on CPU with tiny sizes.
OUT ?= gpu_check
GPU_CHECK_ARGS ?=
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py --out $(OUT) $(GPU_CHECK_ARGS)

clean:
	rm -rf $(DEMO_OUT) .pytest_cache

# The offline real-sound corpus from Debian packages (audio + index.csv stay untracked).
CORPUS_PACKAGES := 0ad-data wesnoth-1.16-data fluid-soundfont-gm hydrogen-drumkits hedgewars-data asterisk-core-sounds-en-wav libfluidsynth3
corpus: $(STAMP)
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q --no-install-recommends $(CORPUS_PACKAGES) \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends $(CORPUS_PACKAGES); }
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[train]'
	$(BIN)/python -m clipsep_rt.training.corpus --out corpus/
	test -f corpus/manifest.json
