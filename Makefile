# `make demo` and `make test` set up .venv (created when missing) and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT := demo_out

.PHONY: demo test bench gpu-check clean live-audio-deps browser-deps corpus devset label-audit default-engine \
	train-resume train-snapshot train-stop train-status

# `make test` installs everything it tests (PyTorch included); `make demo` only the lean core
# install (no PyTorch: OpenVINO, tokenizers, soundfile...) plus the report's matplotlib and scipy.
# Both share .venv: after `make test` the demo finds its packages already there.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[clip,text,dev,report,distributed,train]'
	touch $(STAMP) $(DEMO_STAMP)

DEMO_STAMP := $(VENV)/.demo-installed-stamp
$(DEMO_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[report]'
	touch $(DEMO_STAMP)

# The bundled default model (clipsep_rt/model/weights) separates a shipped mixture of two sounds
# from packages it never trained on (a dog barking and an acoustic guitar, from the dev set) by
# text: the dog by its label and by a paraphrase, an unrelated query, and the rest ("everything
# but the dog": --residual). It writes the audio plus an HTML report (spectrograms, players, SDRi
# against the shipped ground truth, robustness to queries).
DEMO_QUERIES := -q "dog barking" -q "a dog yapping at someone" -q "a bell ringing"
demo: $(DEMO_STAMP)
	mkdir -p $(DEMO_OUT)
	$(BIN)/clipsep-rt examples/dog_guitar/mixture.wav $(DEMO_QUERIES) -o $(DEMO_OUT) --residual \
		--report $(DEMO_OUT)/report --reference examples/dog_guitar/dog.wav \
		--interference examples/dog_guitar/guitar.wav --overwrite
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

# The bundled default model's folder is also its engine folder: its FP32 ONNX graph, its MiniLM
# text encoder as a weight-only INT8 graph with its tokenizer (what the core install, without
# PyTorch, runs on OpenVINO or ONNX Runtime) and manifest.json, exported from the checkpoint
# beside them and checked against torch. Re-run when the bundled weights change.
default-engine: $(STAMP)
	$(BIN)/clipsep-rt export -o clipsep_rt/model/weights --no-fp16 --text-encoder-int8 --no-fp32-text-encoder --overwrite

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

# $(call fetch_packages,LIST,DEBS,PKGS): `apt-get download` the packages named in LIST (comments
# and blank lines skipped) into DEBS, and extract each listed one (a .deb of a package no longer
# listed, such as a v2 download of fluid-soundfont-gm, is not) into PKGS/<package>/ with its
# version in .deb-version; a package already extracted at that version is skipped.
define fetch_packages
	mkdir -p $(2) $(3)
	sed 's/#.*//; s/[[:space:]]//g' $(1) | grep -v '^$$' > $(2)/packages.list
	cd $(2) && xargs apt-get download -q < packages.list
	for deb in $(2)/*.deb; do \
		pkg=$$(dpkg-deb -f $$deb Package); ver=$$(dpkg-deb -f $$deb Version); \
		grep -qx "$$pkg" $(2)/packages.list || continue; \
		if [ "$$(cat $(3)/$$pkg/.deb-version 2>/dev/null)" != "$$ver" ]; then \
			rm -rf $(3)/$$pkg; mkdir -p $(3)/$$pkg; \
			echo "dpkg-deb -x $$deb $(3)/$$pkg && echo $$ver > $(3)/$$pkg/.deb-version"; fi; \
	done | xargs -r -P 2 -I{} sh -c {}
endef

# Corpus v3 from the Debian packages of ../shared/corpus/allowed_packages.txt (audio and index.csv
# stay untracked): data packages are fetched with `apt-get download` into $(CORPUS_DEBS) and
# extracted one per folder into $(CORPUS_PKGS) (no install; a .deb of a package no longer
# allowed, such as a v2 download of fluid-soundfont-gm, is not extracted); the renderers
# (fluidsynth, festival, flite and the festival voices) are apt-installed. The builder skips the
# clips of excluded_clips.txt beside the allowed list. Versions land in the manifest.
CORPUS_ALLOWED ?= ../shared/corpus/allowed_packages.txt
CORPUS_DEBS := .cache/corpus-debs
CORPUS_PKGS := .cache/corpus-pkgs
CORPUS_TOOLS := libfluidsynth3 flite festival festvox-kallpc16k festvox-us-slt-hts festvox-ru
corpus: $(STAMP)
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q --no-install-recommends $(CORPUS_TOOLS) \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends $(CORPUS_TOOLS); }
	$(call fetch_packages,$(CORPUS_ALLOWED),$(CORPUS_DEBS),$(CORPUS_PKGS))
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[train]'
	$(BIN)/python -m clipsep_rt.training.corpus --out corpus/ --packages-root $(CORPUS_PKGS) --allowed $(CORPUS_ALLOWED)
	test -f corpus/manifest.json

# The real-sound dev set (issue "model v3"): two-source mixtures of everyday sounds from the
# packages of ../shared/corpus/heldout_packages.txt only (never trained on), on which recipes
# and checkpoints are chosen. devset/devset.json is committed; the audio is rebuilt here.
HELDOUT ?= ../shared/corpus/heldout_packages.txt
HELDOUT_DEBS := .cache/heldout-debs
HELDOUT_PKGS := .cache/heldout-pkgs
devset: $(STAMP)
	export DEBIAN_FRONTEND=noninteractive; command -v c4group >/dev/null \
		|| apt-get install -y -q --no-install-recommends openclonk \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends openclonk; }
	$(call fetch_packages,$(HELDOUT),$(HELDOUT_DEBS),$(HELDOUT_PKGS))
	$(BIN)/python -m clipsep_rt.training.devset --packages-root $(HELDOUT_PKGS) --heldout $(HELDOUT) --out devset/

# The training campaign of default model v3 (configs/default_model_v3.toml; see DEVELOPERS.md):
# every session starts with `make train-resume` (builds the corpus and the dev set when missing,
# seeds runs/default_v3 from the committed checkpoints/default_v3 and trains in the background)
# and ends with `make train-snapshot` (best checkpoint on the dev set, state and a log row into
# checkpoints/default_v3/, to commit).
CAMPAIGN := $(BIN)/python -m clipsep_rt.training.campaign --config configs/default_model_v3.toml
train-resume: $(STAMP)
	test -f corpus/index.csv || $(MAKE) corpus
	test -f devset/audio/0000_target.wav || $(MAKE) devset
	$(CAMPAIGN) resume
train-snapshot: $(STAMP)
	$(CAMPAIGN) snapshot
train-stop: $(STAMP)
	$(CAMPAIGN) stop
train-status: $(STAMP)
	$(CAMPAIGN) status

# Label audit: one contact sheet (PNG of log-frequency spectrograms) per class of the corpus.
label-audit: $(STAMP)
	$(BIN)/python -m clipsep_rt.training.label_audit corpus/index.csv --out runs/label_audit/
