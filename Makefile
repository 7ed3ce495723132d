# The two commands of the quick start: `make demo` and `make test`; `make examples` executes the
# notebooks of examples/ into runs/examples/, `make docs` builds the site in runs/docs/.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= runs/demo

.PHONY: venv demo test examples docs bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vbayes demo --out $(OUT) --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest

examples: $(STAMP)
	$(BIN)/python examples/run.py --out runs/examples

docs: $(STAMP)
	$(BIN)/python docs/build.py --out runs/docs --examples runs/examples

clean:
	rm -rf $(VENV) runs .pytest_cache
