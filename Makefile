# Two commands for a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install run test lint system-deps lock bench bench-postfix clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { \
	  echo "'$(PY) -m venv' failed; on Debian/Ubuntu installing python3-venv and retrying"; \
	  rm -rf $(VENV); SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-venv \
	  && $(PY) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## The product, running: initializes ./var on first use and starts every role.
run: install
	$(BIN)/sealmail init --quiet
	$(BIN)/sealmail serve --dev-banner

## Tools the tests drive that do not come from PyPI (Debian packages). The browser tests
## launch exactly /usr/bin/chromium (Debian's package), so that path is what is checked.
system-deps:
	@missing=""; \
	for pkg in /usr/bin/chromium:chromium gpg:gnupg gpgconf:gnupg openssl:openssl; do \
	  cmd=$${pkg%%:*}; deb=$${pkg##*:}; \
	  command -v $$cmd >/dev/null 2>&1 && continue; \
	  case " $$missing " in *" $$deb "*) ;; *) missing="$$missing $$deb" ;; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

## The whole suite, SQLite and PostgreSQL (skipped with a reason when none is reachable).
## It writes var/test-results/ (JUnit XML and the hipaa-marked tests' results, which
## `sealmail evidence pack --test-results` puts in the pack) and fails when a HIPAA section
## Sealmail claims has no passing test.  `--dist worksteal`: an idle worker takes queued tests
## from a busy one, so a few long tests sent to one worker do not end the run alone.
## Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE): the
## suite starts dozens of `sealmail` processes, and compiling src/ cost each 1.2 s of CPU
## (4.1 s against 2.9 s to import sealmail.cli on a 2.0 GHz EPYC).
test: install system-deps
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n auto --dist worksteal -q --durations=30 --junitxml=var/test-results/junit.xml \
	  --hipaa-results=var/test-results/hipaa-results.json --hipaa-gate

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## Refresh the lock file from pyproject.toml (then commit requirements.lock).
lock:
	rm -rf /tmp/sealmail-lock && $(PY) -m venv /tmp/sealmail-lock
	/tmp/sealmail-lock/bin/pip install -q --upgrade pip && /tmp/sealmail-lock/bin/pip install -q '.[dev]'
	/tmp/sealmail-lock/bin/pip freeze --exclude-editable | grep -v '^sealmail' > requirements.lock

bench: install
	$(BIN)/python bench/throughput.py

# Sealmail vs a private stock Postfix into the same STARTTLS sink (installs Debian's postfix
# if missing, needs root); e.g. make bench-postfix ARGS="--messages 5000 --rounds 5".
bench-postfix: install
	$(BIN)/python bench/postfix_compare.py $(ARGS)

clean:
	rm -rf $(VENV) var
