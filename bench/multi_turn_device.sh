#!/bin/bash
# BFCL multi-turn throughput on a lent GPU machine (one command at a time, the working tree carried each
# time; how bench/results/*bfcl_multi_turn*_h200* are made). Prepare here (CPU), in ignored folders:
#
#   .whl/: the cp312 wheels the GPU machine's python lacks (its torch, triton and transformers are used):
#     .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
#       -d .whl duckdb pydantic pydantic-core annotated-types typing-inspection jsonschema \
#       jsonschema-specifications referencing rpds-py attrs
#     .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl pytest pluggy iniconfig
#   .study/mt/bfcl.tar.xz: BFCL's data from the bfcl-eval wheel that `make bfclwheel` unpacks:
#     (cd .hephaestus/cache/bfcl_data_bfcl_eval-*/ && tar cJf "$OLDPWD/.study/mt/bfcl.tar.xz" bfcl_eval)
#
# There (carry [".whl", ".study/mt"]):
#   bash bench/multi_turn_device.sh rounds     the default path timed against the single-turn pass (~90 s)
#   bash bench/multi_turn_device.sh fed        + the fed path at three chunk sizes and a profile of one (~5 min)
#   bash bench/multi_turn_device.sh overlap    + fed with feed_overlap, and a profile of it (~4 min)
#   bash bench/multi_turn_device.sh prefetch   + rounds prefetching 128 first prompts, both three times alternating,
#                                              and a profile of the prefetching run (~5 min)
#   bash bench/multi_turn_device.sh profile    + profiles of the rounds run: GPU idle by host phase, cProfile (~4 min)
#   bash bench/multi_turn_device.sh repeat     the rounds run three times against the single-turn pass, + a profile
#                                              of it (~5 min; the ratio's spread within one call)
#   bash bench/multi_turn_device.sh ramp       rounds without and with EngineConfig.prefill_ramp 2048, three times
#                                              alternating, + a profile of the default (~5 min)
#   bash bench/multi_turn_device.sh tune       rounds: the default, prefill_ramp 2048, sync_every 16; twice, the
#                                              second pass reversed (~3 min)
#   bash bench/multi_turn_device.sh generate   + batched model.generate and the engine on the first 32 conversations
#                                              of each category (generate on all 800 outlasts a command; ~5 min)
#   bash bench/multi_turn_device.sh gpu-tests  the GPU-marked engine tests
# Results (tables, logs, profiles) go to $OUT.
set -u
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/mt-out}
mkdir -p /tmp/mt "$OUT"
if [ ! -f /tmp/mt/.site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/mt/site .whl/*.whl && touch /tmp/mt/.site
fi
export PYTHONPATH=/tmp/mt/site
[ -d /tmp/mt/bfcl_eval ] || tar xJf .study/mt/bfcl.tar.xz -C /tmp/mt
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
run=(python3 bench/bfcl_multi_turn_throughput.py --data /tmp/mt/bfcl_eval/data --skip-no-reuse --skip-lanes
     --warm-multi-turn --out "$OUT/mt.txt")
case "${1:-rounds}" in
  rounds)    "${run[@]}" --skip-fed --skip-generate ;;
  fed)       "${run[@]}" --skip-generate --feed-chunk 32 64 128 --profile "$OUT/profile_fed.txt" --profile-fed 64 ;;
  overlap)   "${run[@]}" --skip-generate --skip-fed --feed-overlap --profile "$OUT/profile_overlap.txt" \
               --profile-overlap ;;
  prefetch)  "${run[@]}" --skip-fed --skip-generate --prefetch 128 --repeats 3 --profile "$OUT/profile.txt" \
               --profile-prefetch 128 ;;
  profile)   "${run[@]}" --skip-fed --skip-generate --profile "$OUT/profile.txt" ;;
  repeat)    "${run[@]}" --skip-fed --skip-generate --repeats 3 --profile "$OUT/profile.txt" ;;
  ramp)      "${run[@]}" --skip-fed --skip-generate --prefill-ramp 2048 --repeats 3 --profile "$OUT/profile.txt" ;;
  tune)      "${run[@]}" --skip-fed --skip-generate --prefill-ramp 2048 --sync-every 16 --repeats 2 ;;
  generate)  "${run[@]}" --skip-fed --generate-limit 32 ;;
  gpu-tests) python3 -m pytest -q -p no:cacheprovider -m gpu tests/evaluation/generation ;;
  *) echo "unknown mode $1" >&2; exit 2 ;;
esac 2>&1 | tee "$OUT/mt.log" | grep -v "^\[transformers\]" | tail -60
