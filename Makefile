# rtm: the two set-up commands (`make demo`, `make test`) and the steps they stand on.
# Every target installs what it needs, so each works on a fresh clone.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install jars bench clean

demo: install jars ## Run the main job end to end on a local Kafka + MiniCluster
	$(BIN)/rtm demo

test: install jars ## Run the whole test suite (starts its own Kafka brokers and MiniClusters)
	$(BIN)/pytest

# RTM_PURE_PYTHON for `rtm compile`: its own start need not warn that the build is stale.
install: $(STAMP) ## Create .venv/ and install rtm (editable) with its test tools; compile the engine's modules
	RTM_PURE_PYTHON=1 $(BIN)/rtm compile --if-stale || echo "rtm runs as Python: its modules did not compile (see above)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,compiled]'
	touch $@

jars: .jars/.fetched ## Fetch the Kafka broker and the Flink Kafka connector from Maven Central, build rtm-flink.jar, into .jars/

.jars/.fetched: jars/pom.xml $(shell find jars/src -name '*.java')
	mvn --batch-mode --quiet -f jars/pom.xml package
	touch $@

bench: install jars ## Throughput and latency through Kafka (see README, "Benchmarks")
	$(BIN)/python bench/kafka_io_bench.py

clean: ## Remove the venv, the jars and runtime state (a running broker is stopped first)
	-test -x $(BIN)/rtm && $(BIN)/rtm kafka stop
	rm -rf $(VENV) .jars jars/target .rtm rtm/_compiled udfs/_compiled
