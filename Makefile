# Diffusion book: one entry point. `make book` builds the book, `make test` runs every check.
# Both create .venv/ and install everything on first use (torch 2.13.0 when no torch is present).
# Another environment (conda: environment.yml): `make test VENV=$$CONDA_PREFIX` uses its python.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# What the environment holds; environment.yml installs the same (tests/test_environment.py).
TORCH := torch==2.13.0
EXTRAS := book,test,bench,course
JB := $(VENV)/bin/jupyter-book
# The scale switch read by dlib.setting(): fast (CPU, CI) or full (GPU). `make book SETTING=full`.
SETTING ?= fast
export DLIB_SETTING := $(SETTING)
export PYTHONHASHSEED := 0
CHAPTERS := $(patsubst book/%.md,%,$(shell grep -l '^jupytext:' book/*.md))

.PHONY: book test unit unit-all notebooks build-strict render pair clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

## The main job: execute every chapter and build the HTML book.
book: $(VENV)/.installed
	$(JB) build .
	@echo "Open the book: file://$(CURDIR)/_build/html/index.html"

## Every check: unit tests, nbval over every notebook, the pairing check (in the unit tests),
## the book build with warnings as errors, and the headless-browser check of the rendered pages.
test: $(VENV)/.installed
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory unit-all notebooks build-strict render && \
	echo "make test: all checks passed in $$(( $$(date +%s) - start )) s"

## The quick inner loop (about a minute): unit tests without the `slow` and `subprocess` ones.
unit: $(VENV)/.installed
	$(PY) -m pytest tests --ignore=tests/render -q -m "not slow and not subprocess"

## Every unit test (what `make test` and CI run).
unit-all: $(VENV)/.installed
	$(PY) -m pytest tests --ignore=tests/render -q --durations=10

notebooks: $(VENV)/.installed
	$(PY) -m pytest --nbval-lax notebooks -q -p no:cacheprovider --durations=0 --durations-min=5

build-strict: $(VENV)/.installed
	$(JB) build . --warningiserror --keep-going

## The headless-browser check of the built book; installs Debian's chromium and chromium-driver
## first when they are missing (or says exactly what to run when it cannot).
render: $(VENV)/.installed
	@bash tests/render/setup_browser.sh
	$(PY) -m pytest tests/render -q

## Rewrite notebooks/X.ipynb from book/X.md (the source of truth). Run after editing a chapter.
pair: $(VENV)/.installed
	@for c in $(CHAPTERS); do $(VENV)/bin/jupytext --update --to ipynb --output notebooks/$$c.ipynb book/$$c.md; done

clean:
	rm -rf _build

## The Colab edition, colab/X.ipynb (committed; the chapters' badges open it): plain markdown, a GPU
## runtime requested. Run after `make pair`; tests/test_editions.py fails when it is out of date.
.PHONY: colab assignments grade
colab: $(VENV)/.installed
	$(PY) -m tools.editions colab

## Student and instructor editions of every chapter with exercises (otter-grader), in $(ASSIGNMENTS):
## <chapter>/student/<chapter>.ipynb to hand out, <chapter>/instructor/ with the solutions and the
## autograder.zip of hidden tests. `make assignments ONLY=posterior,elbo` builds some chapters.
ASSIGNMENTS ?= _build/assignments
ONLY ?=
assignments: $(VENV)/.installed
	$(PY) -m tools.editions assignments --out $(ASSIGNMENTS) $(if $(ONLY),--chapters $(ONLY))

## Grade a folder of submitted notebooks (no Docker): `make grade SUBMISSIONS=dir` writes dir/grades.csv
## (or GRADES=file.csv), one row per notebook, one column per exercise.
grade: $(VENV)/.installed
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder-of-notebooks [GRADES=file.csv]" >&2; exit 2; }
	$(PY) -m tools.editions grade $(SUBMISSIONS) --assignments $(ASSIGNMENTS) $(if $(GRADES),--out $(GRADES))
