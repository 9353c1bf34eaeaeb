# labelcast — `make demo` and `make test` do the whole set-up from a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FASHION := /usr/share/datasets/fashion-mnist
# Debian packages holding the built-in scenarios' data: Fashion-MNIST (fashion, digits), Openclipart's
# PNGs (clipart, RGB), WordNet + GCIDE + fortunes (wordnet, text); installed with apt-get when missing
# (no other download at run time)
DEB_DATA := dataset-fashion-mnist:$(FASHION) openclipart-png:/usr/share/openclipart/png \
	wordnet-base:/usr/share/wordnet/data.noun dict-gcide:/usr/share/dictd/gcide.dict.dz \
	fortunes:/usr/share/games/fortunes/fortunes
# torch is pinned: the plain name pulls a multi-GB CUDA build; 2.13.0 is the CPU wheel here.
TORCH := torch==2.13.0

.PHONY: setup data demo demo-digits test test-slow test-all lint format docs bench bench-quick bench-all fuzz clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[sender,receiver,demo,scale,dev]'
	touch $(STAMP)

data:
	@missing=""; for pd in $(DEB_DATA); do [ -e "$${pd#*:}" ] || missing="$$missing $${pd%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian data packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null; \
	  else \
	    echo "missing data packages:$$missing — run 'sudo apt-get install$$missing'"; exit 1; \
	  fi; \
	fi

demo: setup
	$(BIN)/labelcast demo --scenario fashion

demo-digits: setup
	$(BIN)/labelcast demo --scenario digits

# ruff, then the suite with the tiny benchmark run (≤ 6 min on 2 cores); the half-minute end-to-end runs are test-slow's
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -x -p no:cacheprovider -m "not slow"

# SIGKILL and power cuts, a fresh lean venv, two Ray nodes, 40k fuzzed inputs, the CLI on Fashion-MNIST (~5 min)
test-slow: setup
	$(BIN)/python -m pytest -q -x -p no:cacheprovider -m "slow"

# everything: make test and make test-slow in one run
test-all: setup
	$(BIN)/python -m pytest -q -x -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# generated documents: the API reference from the code, every results block from the committed JSON of its run
# (docs/results/*.json, the list in benchmarks/docblocks.py); a test fails when a committed document differs from
# what this renders. The equitable bench's plots are redrawn from their JSON too.
docs: setup
	$(BIN)/python -m labelcast._apidoc docs/api.md
	$(BIN)/python benchmarks/docblocks.py
	for s in fashion digits clipart; do \
		$(BIN)/labelcast bench --replot docs/results/equitable-$$s.json --plots docs --results-section bench-$$s || exit 1; \
	done

# the equitable benchmark (labels vs. images vs. models vs. distilled data) on the two scenarios the defaults
# were tuned on; the held-out clipart run is in bench-all
bench: setup
	$(BIN)/labelcast bench --scenario fashion --json docs/results/equitable-fashion.json --results-section bench-fashion
	$(BIN)/labelcast bench --scenario digits --json docs/results/equitable-digits.json --results-section bench-digits

bench-quick: setup
	$(BIN)/labelcast bench --quick --json out/bench/equitable-quick.json --plots '' --results-md ''

# every per-issue benchmark (hours on 2 cores)
bench-all: bench
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/codec.py --json docs/results/codec.json
	$(BIN)/python benchmarks/link.py --json docs/results/link.json
	$(BIN)/python benchmarks/selection.py --clusters 32 --budgets 1024 4096 --seeds 3 --strategies random random+quota \
		random-keyed+quota energy-high+quota el2n-easy+quota energy-high+quota+soft energy-high+quota+soft4-T2 \
		--plots docs --json docs/results/selection.json
	$(BIN)/python benchmarks/scoring.py --json docs/results/scoring.json
	$(BIN)/python benchmarks/receiver.py --json docs/results/receiver.json
	$(BIN)/python benchmarks/device_training.py --json docs/results/device-training.json
	$(BIN)/python benchmarks/reference.py --json docs/results/reference.json
	$(BIN)/python benchmarks/scale.py --json docs/results/scale.json
	$(BIN)/python benchmarks/reassembly.py --json docs/results/reassembly.json
	$(BIN)/python benchmarks/fec.py --json docs/results/fec.json
	$(BIN)/python benchmarks/byo_teacher.py --json docs/results/byo.json
	$(BIN)/python benchmarks/fleet.py --json docs/results/fleet.json
	$(BIN)/python benchmarks/sealed.py --json docs/results/sealed.json
	$(BIN)/python benchmarks/field.py --json docs/results/field.json
	$(BIN)/python benchmarks/field.py --scenario digits --work out/bench/field-digits --seeds 1 --budgets 270 1024 \
		--json docs/results/field-digits.json
	$(BIN)/python benchmarks/field.py --floors 0.05 0.1 0.25 0.5 1.0 --budgets 270 --json docs/results/field-floor.json
	$(BIN)/python benchmarks/field.py --choose-semi --budgets 270 --json docs/results/field-semi.json
	$(BIN)/python benchmarks/field.py --scenario text --work out/bench/text-semi --budgets 270 1080 4050 \
		--json docs/results/field-text.json
	$(BIN)/python benchmarks/vectors.py --json docs/results/vectors.json
	$(BIN)/python benchmarks/semi.py --json docs/results/semi.json
	$(BIN)/python benchmarks/semi.py --scenarios fashion --budgets 270 --seeds 5 --json docs/results/semi-fashion-5seeds.json
	P="features=input propagation_weight=0.5"; for r in "$$P" "$$P agree_only=true" "features=both propagation_weight=0.5" \
		"features=input propagation_weight=0.7" "$$P iterations=50" "$$P erase=0.5" "$$P student.flip=true flip_views=true" \
		"$$P fraction=0.7" "$$P pool=10000" "features=gradients propagation_weight=0.5 mass_keep=1.0 fraction=0.5" \
		"mass_keep=1.0 fraction=0.5" fraction=0.5; do $(BIN)/python benchmarks/semi.py --scenarios fashion \
		--budgets 270 --recipe $$r --json out/bench/semi-recipe-$$(echo $$r | tr ' =' '__').json || exit 1; done
	$(BIN)/python benchmarks/semi.py --scenarios fashion --budgets 270 --recipes out/bench/semi-recipe-*.json \
		--json docs/results/semi-recipes.json
	$(BIN)/python benchmarks/semi.py --scenarios text --budgets 270 --recipe pool=20000 --json out/bench/semi-text-pool.json
	$(BIN)/python benchmarks/semi.py --scenarios text --budgets 270 --recipes out/bench/semi-text-pool.json \
		--json docs/results/semi-recipes-text.json
	$(BIN)/python benchmarks/semi.py --scenarios text --budgets 4050 --recipe keep=0.5 --json out/bench/semi-text-keep.json
	$(BIN)/python benchmarks/semi.py --scenarios text --budgets 4050 --recipes out/bench/semi-text-keep.json \
		--json docs/results/semi-recipes-text-4050.json
	$(BIN)/python benchmarks/semi_text_views.py
	$(BIN)/python benchmarks/choices.py --json out/bench/choices.json
	$(BIN)/python benchmarks/choices.py --scenarios clipart --only labels --json out/bench/choices-clipart.json
	$(BIN)/python benchmarks/choices.py --merge out/bench/choices.json out/bench/choices-clipart.json \
		--json docs/results/choices.json
	$(BIN)/labelcast bench --scenario clipart --payload-bytes 256 --payload-bytes 1024 --payload-bytes 4096 \
		--payload-bytes 16384 --json docs/results/equitable-clipart.json --results-section bench-clipart
	$(BIN)/python benchmarks/incremental.py --json docs/results/incremental.json
	$(BIN)/python benchmarks/text.py --methods random,random-keyed,auto --json docs/results/text.json --plot docs/text_accuracy.png
	$(BIN)/python benchmarks/reliability.py --doc docs/reliability.md --json docs/results/reliability.json
	$(BIN)/python benchmarks/docblocks.py

fuzz: setup
	$(BIN)/pip install -q -e '.[fuzz]'
	$(BIN)/python benchmarks/fuzz.py --cases 1000000 --json out/bench/fuzz.json
	$(BIN)/python benchmarks/atheris_fuzz.py payload -runs=200000
	$(BIN)/python benchmarks/atheris_fuzz.py frames -runs=200000
	$(BIN)/python benchmarks/atheris_fuzz.py manifest -runs=50000

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
