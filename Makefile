# kbsearch: `make demo` runs the product on embedded defaults; `make test` installs and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
# The demo's throwaway directory (scripts/demo.py): its loopback port; DEMO_DIRECTORY=0 runs the demo
# without slapd, on Django groups.
DEMO_LDAP_PORT ?= 3389
DEMO_DIRECTORY ?= 1

.PHONY: venv model demo demo-data serve serve-prod test lint bench evaluate clean

# python-ldap builds against Debian's OpenLDAP and SASL headers; slapd and ldap-utils run the test
# directory (tests/access) and the demo's. Installed as root when missing, like Chromium below.
LDAP_PACKAGES := slapd ldap-utils libldap2-dev libsasl2-dev

$(VENV)/.installed: requirements.txt requirements-test.txt
	(test -x /usr/sbin/slapd && test -f /usr/include/ldap.h && test -f /usr/include/sasl/sasl.h) || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(LDAP_PACKAGES))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, from the local CPU wheel: any other torch spec pulls gigabytes of CUDA.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

model: venv
	$(PY) manage.py build_model

# The demo without a directory's data: local demo users with Django groups (demo/users.yaml).
demo-data: model
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup

# A development server on loopback: DEBUG on (production leaves it off, the default). Principals and
# sign-in come from the environment (KBSEARCH_PRINCIPAL_RESOLVER, KBSEARCH_LDAP_SIGN_IN).
serve: venv
	@echo "kbsearch serving on http://$(HOST):$(PORT)/ (demo/README.md)"
	KBSEARCH_DEBUG=1 $(PY) manage.py runserver --noreload $(HOST):$(PORT)

# slapd loaded with demo/directory.ldif, the directory registered and synced, the sample knowledge
# base, then the server; Ctrl-C stops the server and slapd (scripts/demo.py, demo/README.md).
demo: model
	$(PY) scripts/demo.py --host $(HOST) --port $(PORT) --ldap-port $(DEMO_LDAP_PORT) \
		$(if $(filter 0 no off false,$(DEMO_DIRECTORY)),--no-directory)

# Lint and the layer contracts of docs/architecture.md: a wrong import fails the build.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# The browser test drives Debian's headless Chromium; CI runs this as root, so it can install it.
test: lint
	(command -v chromium >/dev/null && command -v chromedriver >/dev/null) || \
		(apt-get update && apt-get install -y chromium chromium-driver)
	scripts/with-test-services.sh $(PY) -m pytest

# Each writes a Markdown table for docs/benchmarks.md; bench_api.py starts its own servers (runserver, gunicorn).
bench: model
	$(PY) bench/bench_search.py
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_encoder.py
	$(PY) bench/bench_api.py

evaluate: model
	$(PY) manage.py evaluate ../shared/eval --mode bm25 --mode vector --mode hybrid

clean:
	rm -rf var

# Production serving on loopback (gunicorn.conf.py: workers, threads and the rest from KBSEARCH_WEB_*).
# DEBUG stays off, so it needs a secret key (KBSEARCH_SECRET_KEY) and HTTPS: put it behind a
# TLS-terminating proxy that sets X-Forwarded-Proto (KBSEARCH_PROXY_SSL_HEADER, set here).
serve-prod: venv
	@test -n "$$KBSEARCH_SECRET_KEY" || (echo "set KBSEARCH_SECRET_KEY (README: Production serving)" && exit 1)
	$(PY) manage.py collectstatic --noinput -v 0
	KBSEARCH_PROXY_SSL_HEADER=$${KBSEARCH_PROXY_SSL_HEADER:-X-Forwarded-Proto} \
		$(VENV)/bin/gunicorn -c gunicorn.conf.py --bind $(HOST):$(PORT)
