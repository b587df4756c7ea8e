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

# The bundled world, 200 frames of random play with two events, filmed into demo.gif.
demo: $(STAMP)
	$(PY) -m worldsim.cli rollout --checkpoint explorer-64 --frames 200 --actions random --events "0:a sunny meadow,100:night falls" --scale 3 --out demo.gif

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
