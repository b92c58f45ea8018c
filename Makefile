# One venv per checkout; torch is pinned before everything else so pip never pulls a CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install install-nnunet demo test test-e2e test-nnunet test-interop lint bench bench-gpu report clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# the nnU-Net backend (segmenter.backend=nnunet). timm pulls torchvision, which nnU-Net's 2d U-Net
# never imports; a PyPI torchvision cannot load beside a CPU-only torch (it links the CUDA one),
# and then breaks Lightning's imports, so it is removed again where it does not load
install-nnunet: install
	$(PY) -m pip install -q -e '.[dev,nnunet]' torch==2.13.0
	$(PY) -c "import torchvision" 2>/dev/null || $(PY) -m pip uninstall -q -y torchvision

demo: install
	$(PY) -m axondeepsynth.run +experiment=demo

# unit and in-process integration tests; the command-line runs are `make test-e2e`
test: install
	$(PY) -m pytest -q -m "not slow and not e2e and not interop"

test-e2e: install
	$(PY) -m pytest -q -m "e2e and not slow and not interop"

# nnU-Net trained, applied and exported on a tiny phantom run (about a minute on 2 cores)
test-nnunet: install-nnunet
	$(PY) -m pytest -q tests/test_nnunet.py

# AxonDeepSeg 5.5.0 in a venv of its own (it pins torch 2.3.1 and nnunetv2 2.2.1; ~3 GB from the
# package index, once), then its own commands on our outputs; not in CI
ADS_VENV ?= .venv-ads

$(ADS_VENV)/.installed:
	python3 -m venv $(ADS_VENV)
	$(ADS_VENV)/bin/python -m pip install -q axondeepseg==5.5.0
	touch $@

test-interop: install $(ADS_VENV)/.installed
	AXONDEEPSEG_VENV=$(ADS_VENV) $(PY) -m pytest -q -m interop tests/test_interop.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) -m benchmarks

# one short device run (<= 10 min): the GPU training rows (fp32 / bf16-mixed / channels_last /
# compile: it/s, memory, MFU) and a short real TEM -> SEM fit of the full SynDiff with translation
bench-gpu: install
	$(PY) -m benchmarks.gpu

report: install
	$(PY) -m axondeepsynth.report logs

clean:
	rm -rf $(VENV) $(ADS_VENV) *.egg-info .pytest_cache .ruff_cache
