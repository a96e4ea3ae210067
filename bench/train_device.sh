#!/bin/bash
# Issue 13's training-engine benchmarks (bench/train_throughput.py) on a lent GPU machine reached one command
# at a time, the working tree carried each time. Written 2026-12-04 from the commands behind
# bench/results/2026-12-02_train_throughput_*_h200.txt (whose wrapper was not kept); not yet run as such.
# Prepare here (CPU), in ignored folders (.git/info/exclude: /.whl/ and /.whl13/):
#
#   .whl/: the cp312 wheels the GPU machine's python lacks for our code (training.config needs pydantic), as
#     bench/multi_turn_device.sh's header says (its first download command).
#   .whl13/: the peers' wheels (the GPU machine's torch, triton and transformers are used):
#     .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl13 liger-kernel==0.8.5 torchao==0.17.0 torchtitan==0.2.2 torchdata==0.11.0 tyro==1.0.17 \
#       docstring-parser typeguard
#     (torchtitan's package imports torchdata and tyro for its trainer; the 2026-12-05 GPU image lacked both)
#
# There (carry [".whl", ".whl13"]):
#   bash bench/train_device.sh peers     hf, hf+liger, ours, ours+fp8, torchtitan at 350M and 1B, 16k tokens/step
#                                        (issue 13's table; ~3.5 min on 2026-12-02)
#   bash bench/train_device.sh large     the same at 64k tokens/step (~5 min)
#   bash bench/train_device.sh profile   the torch profiler's breakdown of ours at 350M and at 1B, 16k tokens/step
#                                        (and since 2026-12-05 the GPU idle by the loop's train.* phases)
#   bash bench/train_device.sh parity [STEPS]   ours bf16 against ours+fp8 from the same init at 1B (300 steps)
#   bash bench/train_device.sh ours [ARGS...]   ours alone at 350M and 1B, 16k, with extra train_throughput ARGS
#                                        (e.g. --compile-scope decoder, --perf loss_chunk_tokens=16384) -- one variant
#                                        against the default, both in one command
#   bash bench/train_device.sh micro     ours at 350M and 1B, 64k tokens/step, in micro-batches of 16, 32 and 64
#                                        rows (the gpu profile's CPT stages are 16 x 4 today)
#   bash bench/train_device.sh gpu-tests the CUDA tests of training (tests/training/test_gpu.py: bf16, fused AdamW with the
#                                        clipping inside it, compiled and not; needs pytest, pluggy, iniconfig in .whl)
#   bash bench/train_device.sh before    ours and ours+fp8 at 350M and 1B, 16k, as they are, then as they were
#                                        before 2026-12-05 (--clip-outside-optimizer --float8-all-linears:
#                                        clip_grad_norm_ rescaling the grads, float8 on every linear)
# Tables, JSON rows, profiles and curves go to $OUT, with each mode's log as train_<mode>.log, so one device call
# can run several modes: bash bench/train_device.sh gpu-tests; bash bench/train_device.sh before
set -u
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1 PYTHONUNBUFFERED=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
OUT=${OUT:-/tmp/t13-out}
mkdir -p /tmp/t13 "$OUT"
if [ ! -f /tmp/t13/.site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/t13/site .whl/*.whl .whl13/*.whl \
    && touch /tmp/t13/.site
fi
export PYTHONPATH=/tmp/t13/site
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
bench=(python3 bench/train_throughput.py --configs 350m:1024 1b:1024)
mode=${1:-peers}
shift || true
case "$mode" in
  peers)   "${bench[@]}" --tokens-per-step 16384 --warmup 6 --steps 12 --out "$OUT/peers_16k.txt" ;;
  large)   "${bench[@]}" --tokens-per-step 65536 --warmup 4 --steps 8 --out "$OUT/peers_64k.txt" ;;
  profile) python3 bench/train_throughput.py --engines --configs 350m:1024 --tokens-per-step 16384 \
             --profile-out "$OUT/profile_350m.md"
           python3 bench/train_throughput.py --engines --configs 1b:1024 --tokens-per-step 16384 \
             --profile-out "$OUT/profile_1b.md" ;;
  parity)  python3 bench/train_throughput.py --engines --parity-steps "${1:-300}" --parity-config 1b:1024 \
             --tokens-per-step 16384 --parity-out "$OUT/float8_parity_1b" ;;
  ours)    "${bench[@]}" --engines ours --tokens-per-step 16384 --warmup 6 --steps 12 --out "$OUT/default.txt"
           "${bench[@]}" --engines ours --tokens-per-step 16384 --warmup 6 --steps 12 --out "$OUT/variant.txt" "$@" ;;
  before)  "${bench[@]}" --engines ours ours+fp8 --tokens-per-step 16384 --warmup 6 --steps 12 --out "$OUT/now.txt"
           "${bench[@]}" --engines ours ours+fp8 --tokens-per-step 16384 --warmup 6 --steps 12 \
             --clip-outside-optimizer --float8-all-linears --out "$OUT/before.txt" ;;
  micro)   for m in 16 32 64; do
             "${bench[@]}" --engines ours --tokens-per-step 65536 --warmup 4 --steps 8 --max-micro-batch "$m" \
               --out "$OUT/micro_$m.txt"
           done ;;
  gpu-tests) python3 -m pytest -q -p no:cacheprovider -m gpu tests/training/test_gpu.py ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac 2>&1 | tee "$OUT/train_$mode.log" | grep -v "^\[transformers\]" | tail -60
