# The two commands of the README: `make demo` (the main job) and `make test`.
DB ?= envsynth.db
OUT ?= out

.PHONY: setup demo test lint

setup:
	bash scripts/setup.sh

demo: setup
	envsynth generate general --db $(DB)
	envsynth export --db $(DB) --format jsonl --out $(OUT)/general.jsonl
	envsynth export --db $(DB) --format parquet --out $(OUT)/general.parquet
	envsynth audit --db $(DB) --dataset general --policy random --samples 8 --per-family 50 --out $(OUT)
	envsynth card --db $(DB) --dataset general --out data_cards/general.md
	envsynth generate search --db $(DB)
	envsynth audit --db $(DB) --dataset search --policy random --samples 8 --out $(OUT)
	envsynth card --db $(DB) --dataset search --out data_cards/search.md
	envsynth rollout --db $(DB) --policy bundled --episodes 2 --max-turns 2 --policy-arg max_tokens=64

test: setup
	bash scripts/setup-docker.sh
	ruff check envsynth gyms pipelines sandbox model kernels tests
	mypy
	python3 -m pytest -q

lint:
	ruff check envsynth gyms pipelines sandbox model kernels tests
	mypy
