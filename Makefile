# Every target sets up .venv itself, so a fresh clone needs only `make play` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU wheel pinned for the test/CI install; GPU users install torch their own way (see README).
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install play test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH_PIN)"
	$(PY) -m pip install -e ".[test,play]"
	touch $(STAMP)

install: $(STAMP)

play: $(STAMP)
	$(PY) play.py --world auto $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

# Until a trained default world ships, the demo trains the tiny chain (a few CPU minutes) and films it.
demo: $(STAMP)
	$(PY) -m worldsim.cli train recipe --size tiny --out runs/demo-tiny
	$(PY) -m worldsim.cli rollout --checkpoint runs/demo-tiny/world --frames 120 --actions random --events "0:a sunny meadow,60:night falls" --out runs/demo-tiny/demo.gif

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
