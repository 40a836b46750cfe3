# kbsearch: `make demo` runs the product on embedded defaults; `make test` installs and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv model demo demo-data serve test test-fast bench evaluate clean

$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, from the local CPU wheel: any other torch spec pulls gigabytes of CUDA.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

model: venv
	$(PY) manage.py build_model

demo-data: model
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup

serve: venv
	@echo "kbsearch serving on http://$(HOST):$(PORT)/ - sign in as alice, bob, carol, dave or erin, password kbsearch-demo (demo/README.md)"
	$(PY) manage.py runserver --noreload $(HOST):$(PORT)

demo: demo-data serve

# The browser test drives Debian's headless Chromium; CI runs this as root, so it can install it.
test: venv
	(command -v chromium >/dev/null && command -v chromedriver >/dev/null) || \
		(apt-get update && apt-get install -y chromium chromium-driver)
	scripts/with-test-services.sh $(PY) -m pytest

bench: model
	$(PY) bench/run.py

evaluate: model
	$(PY) manage.py evaluate ../shared/eval --mode bm25 --mode vector --mode hybrid

clean:
	rm -rf var
