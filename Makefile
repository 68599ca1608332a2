# inkloop. The README's two commands are `make demo` and `make test`; both create .venv when it is missing and
# reuse it (installing nothing) when it is up to date.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.inkloop-installed
# The CPU build installs quickly (and from a local file on the project's own machines). For a GPU, install a CUDA
# build first, e.g. `make venv TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128`; an installed torch is kept.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
PYTEST_ARGS ?=
# Handwriting and printed fonts for synthetic paragraphs (synth/fonts.py lists the families it uses).
FONT_PACKAGES := fonts-dkg-handwriting fonts-breip fonts-bwht fonts-dancingscript fonts-ecolier-court \
	fonts-femkeklaver fonts-humor-sans fonts-kristi fonts-klee fonts-rufscript fonts-comic-neue \
	fonts-kaushanscript fonts-jura fonts-yanone-kaffeesatz fonts-comfortaa fonts-dejavu-core fonts-liberation2 \
	fonts-freefont-ttf fonts-sil-andika fonts-cantarell fonts-oldstandard fonts-linuxlibertine fonts-lato \
	fonts-open-sans fonts-sil-charis fonts-crosextra-caladea fonts-sil-gentium

# The machine-wide PYTHONDONTWRITEBYTECODE=1 makes every import of torch, prefect and great-expectations
# recompile; inkloop's own processes cache bytecode (ignored by git).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: venv fonts browser tesseract kraken labelstudio demo test test-fast lint lock clean base-model base-model-gpu docs docs-serve \
	screenshots

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
		|| { echo "inkloop needs Python 3.11: run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -c 'import torch' 2>/dev/null \
		|| $(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) '$(TORCH_SPEC)'
	$(BIN)/python -m pip install --quiet --constraint requirements/constraints.txt --editable '.[dev]'
	@touch $(STAMP)

# Handwriting fonts from npm's @fontsource packages (synth/data/fontsource.txt), into the system font folder as
# root, else the user's; installed when missing.
FONTSOURCE_DIR ?= $(if $(filter 0,$(shell id -u)),/usr/local/share/fonts/fontsource,$(HOME)/.local/share/fonts/fontsource)

# Debian font packages, installed when missing (as root, or through sudo), then the npm ones.
fonts:
	@missing=$$(for p in $(FONT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		command -v apt-get >/dev/null || { echo "install these fonts (Debian names): $$missing" >&2; exit 1; }; \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		echo "installing fonts: $$missing"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@sh deploy/fontsource.sh synth/data/fontsource.txt $(FONTSOURCE_DIR)

# Debian's Chromium, for the web page test (playwright drives it; no browser is downloaded).
browser:
	@dpkg -s chromium >/dev/null 2>&1 || { \
		command -v apt-get >/dev/null || { echo "install Chromium (Debian package chromium)" >&2; exit 1; }; \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		echo "installing chromium"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	}

# Debian's Tesseract 5 with its English model, the peer that bench/peer_bench.py compares inkloop with.
tesseract:
	@dpkg -s tesseract-ocr tesseract-ocr-eng >/dev/null 2>&1 || { \
		command -v apt-get >/dev/null || { echo "install Tesseract (Debian packages tesseract-ocr tesseract-ocr-eng)" >&2; exit 1; }; \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		echo "installing tesseract"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends tesseract-ocr tesseract-ocr-eng >/dev/null; \
	}

# kraken 7.1.1 in a virtualenv of its own (its pins conflict with inkloop's), for bench/real_bench.py's side by side
# with kraken's shipped baseline segmenter (bench/kraken_lines.py). About a minute and 1.6 GB once, then a no-op.
kraken:
	@bash deploy/kraken-venv.sh .venv-kraken

# Label Studio in a virtualenv of its own (it pins packages inkloop's cannot share), for the test suite's local
# Label Studio; `inkloop labelstudio up` installs its own under $INKLOOP_HOME. About 2 minutes once, then a no-op.
labelstudio: venv
	@INKLOOP_LABEL_STUDIO_VENV=$(CURDIR)/.venv-labelstudio $(BIN)/inkloop labelstudio install

# The main job on the embedded default (SQLite, a store folder, all under ./.inkloop).
# Label Studio and the endpoint stay up until Ctrl-C (DEMO_ARGS=--once stops them at the end).
DEMO_ARGS ?=
demo: venv fonts
	$(BIN)/inkloop demo $(DEMO_ARGS)

# The shipped model, reproducibly, in three stages (GPU with bf16 when there is one; the defaults are sized for a
# 2-core CPU: about 90 + 90 + 100 minutes). Stage 1 trains from scratch on synthetic paragraphs in the Debian
# training fonts. Stage 2 fine-tunes it on fresh pages of which 30% are written in block capitals (as forms and
# notes are), so that capitals in unseen hands read as well as mixed case. Stage 3 fine-tunes that on pages in
# every training family (the Debian ones and the npm ones: 87 hands) with what real pages add (squared paper,
# pencil, thin pens, shadows, steep camera angles) on half of them. Then the held-out families in both polarities
# are evaluated into the model card and the artifact is installed as the shipped model. Each step is a file
# target: rerunning after an interruption skips what is done and resumes training from the last checkpoint.
# Stages 1 and 2 are base-2's; to start stage 3 from base-2 (as base-3 was made) instead of retraining them:
#   git show a90a67b:model/artifacts/base.pt > base-2.pt && make base-model HANDS_INIT=base-2.pt
BASE_TRAIN ?= 4000
BASE_SEED ?= 11
BASE_CONFIG ?= model/configs/base.json
CAPS_TRAIN ?= 4000
CAPS_CONFIG ?= model/configs/base-caps.json
HANDS_TRAIN ?= 3000
HANDS_CONFIG ?= model/configs/base-hands.json
HANDS_INIT ?= runs/base-caps/model.pt
DATA ?= data
SYNTH := $(BIN)/inkloop synth
resume = $(if $(wildcard $(1)/checkpoints/last.ckpt),--resume)

base-model: venv fonts model/artifacts/base.pt

$(DATA)/base-train/labels.jsonl:
	$(SYNTH) --count $(BASE_TRAIN) --out $(DATA)/base-train --seed $(BASE_SEED)
$(DATA)/base-val/labels.jsonl:
	$(SYNTH) --count 400 --out $(DATA)/base-val --seed 2
$(DATA)/caps-train/labels.jsonl:
	$(SYNTH) --count $(CAPS_TRAIN) --out $(DATA)/caps-train --seed 12 --caps-share 0.3
$(DATA)/caps-val/labels.jsonl:
	$(SYNTH) --count 400 --out $(DATA)/caps-val --seed 4 --caps-share 0.3
$(DATA)/hands-train/labels.jsonl:
	$(SYNTH) --count $(HANDS_TRAIN) --out $(DATA)/hands-train --seed 13 --caps-share 0.3 --realism 0.5
$(DATA)/hands-val/labels.jsonl:
	$(SYNTH) --count 300 --out $(DATA)/hands-val --seed 6 --caps-share 0.3 --realism 0.5
$(DATA)/heldout/labels.jsonl:
	$(SYNTH) --count 400 --out $(DATA)/heldout --seed 3 --font-set heldout --dark-share 0.5

runs/base/model.pt: $(DATA)/base-train/labels.jsonl $(DATA)/base-val/labels.jsonl
	$(BIN)/inkloop train --data $(DATA)/base-train --val $(DATA)/base-val --config $(BASE_CONFIG) \
		--out runs/base --version base-1 $(call resume,runs/base)

runs/base-caps/model.pt: runs/base/model.pt $(DATA)/caps-train/labels.jsonl $(DATA)/caps-val/labels.jsonl
	$(BIN)/inkloop train --data $(DATA)/caps-train --val $(DATA)/caps-val --config $(CAPS_CONFIG) \
		--init runs/base/model.pt --out runs/base-caps --version base-2 $(call resume,runs/base-caps)

runs/base-hands/model.pt: $(HANDS_INIT) $(DATA)/hands-train/labels.jsonl $(DATA)/hands-val/labels.jsonl
	$(BIN)/inkloop train --data $(DATA)/hands-train --val $(DATA)/hands-val --config $(HANDS_CONFIG) \
		--init $(HANDS_INIT) --out runs/base-hands --version base-3 $(call resume,runs/base-hands)

model/artifacts/base.pt: runs/base-hands/model.pt $(DATA)/heldout/labels.jsonl
	$(BIN)/inkloop evaluate --model runs/base-hands/model.pt --data $(DATA)/heldout --into-card heldout_fonts
	mkdir -p model/artifacts && cp runs/base-hands/model.pt model/artifacts/base.pt

# Stage 4, the shipped model (base-4): base-3 (as committed in 325cc3a, the output of the three stages above)
# fine-tuned by deploy/gpu-base-model.sh on 12,000 fresh pages with bf16, then evaluated on the same 400 held-out
# pages and installed. Sized for one GPU lent for 10 minutes (base-4: BUDGET_S=530 on an H200); it runs on a CPU
# too, but give it hours there (MINUTES=600 STEPS=1480 repeats base-4's steps). Settings: the script's (environment
# or make variables: BUDGET_S, MINUTES, STEPS, PAGES, BATCH, LR, ...).
BASE3_COMMIT ?= 325cc3a
GPU_RUN ?= runs/base-gpu
base-model-gpu: venv fonts $(DATA)/heldout/labels.jsonl
	rm -rf $(GPU_RUN)/work && mkdir -p $(GPU_RUN) && git show $(BASE3_COMMIT):model/artifacts/base.pt > $(GPU_RUN)/base-3.pt
	OUT=$(GPU_RUN)/out WORK=$(GPU_RUN)/work INIT=$(GPU_RUN)/base-3.pt INKLOOP=$(BIN)/inkloop deploy/gpu-base-model.sh
	$(BIN)/inkloop evaluate --model $(GPU_RUN)/out/model.pt --data $(DATA)/heldout --into-card heldout_fonts
	mkdir -p model/artifacts && cp $(GPU_RUN)/out/model.pt model/artifacts/base.pt

test: venv fonts browser tesseract labelstudio
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# What needs no service (no PostgreSQL, no Label Studio, no browser) and no long work: about two minutes.
FAST := not postgres and not labelstudio and not browser and not slow
test-fast: venv fonts
	$(BIN)/python -m pytest -m "$(FAST)" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The documentation site into site/, with --strict: a broken link, a missing page or image fails the build.
# NO_MKDOCS_2_WARNING: the Material theme's notice about MkDocs 2 on every build (the site pins mkdocs<2).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The docs' screenshots (docs/images/*.png: the web page, the Label Studio queue and a task, the gate and drift
# reports) in headless Chromium, from the home where `make demo` ran (INKLOOP_HOME, default ./.inkloop); about a
# minute. Redo them when a page changes: `make demo DEMO_ARGS=--once && make screenshots`.
screenshots: venv browser
	$(BIN)/python -m devtools.screenshots --out docs/images

# The documentation site on http://127.0.0.1:8002 (8000 is the endpoint's, 8001 the drift UI's), rebuilt on change.
docs-serve: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8002

# Re-pin every dependency (torch excepted: TORCH_SPEC chooses it) after changing pyproject.toml.
lock: venv
	{ echo "# Exact versions the project is tested with; written by \`make lock\`. torch is chosen by TORCH_SPEC in the Makefile."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -viE '^(torch|nvidia-|triton)'; } > requirements/constraints.txt

clean:
	rm -rf $(VENV) .venv-labelstudio .pytest_cache .ruff_cache
