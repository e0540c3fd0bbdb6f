# Two commands on a fresh machine: `make demo` (the Gradio app) and `make test` (lint, the docs site
# (`mkdocs build --strict`: broken links and anchors fail), the lean-serving check
# in a second torch-free venv, `pip install .` / `-e .` and the `earshot` command from outside the checkout,
# then the test suite).
# Both build .venv from requirements.txt first (≈6 GB: PyPI's torch wheels are CUDA builds that also run on CPU).
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# free disk the first install needs: the venv (≈6 GB) and pip's unpacking
NEED_GB ?= 8

.PHONY: demo test lint docs system-deps serve-check install-check backbone-weights

# pip lists every package as it goes (no -q on the big install: minutes of silence look like a hang); earshot
# itself goes in editable, so `.venv/bin/python -m jobs.JOB` and `.venv/bin/earshot` work from any folder.
$(STAMP): requirements.txt pyproject.toml
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); if [ "$$free" -lt $(NEED_GB) ]; then \
	  echo "make: $$free GB free on $$(df -P . | awk 'NR==2 {print $$6}'), and .venv needs about $(NEED_GB) GB" \
	    "(PyPI's torch wheels are CUDA builds): free some space and run make again"; exit 1; fi
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	@echo "make: installing requirements.txt into $(VENV) (about 6 GB the first time; pip shows each package)"
	$(VENV)/bin/pip install --progress-bar on -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	$(MAKE) backbone-weights
	touch $(STAMP)

# The aisfx backbone's weights (CC BY 4.0) ship inside its PyPI wheel; --no-deps, because the wheel pins old
# numpy and librosa that earshot never imports (it reads the checkpoint only, checked by its sha256).
backbone-weights:
	$(VENV)/bin/pip install -q --no-deps aisfx==0.1.2

demo: $(STAMP)
	$(VENV)/bin/python app.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

system-deps:
	bash scripts/system-deps.sh

serve-check: $(STAMP)
	bash scripts/serve-venv-check.sh

install-check: $(STAMP)
	bash scripts/install-check.sh

test: $(STAMP) system-deps lint docs serve-check install-check
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider
