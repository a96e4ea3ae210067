#!/bin/bash
# The recipe study on a lent GPU machine that is reached one command at a time and keeps its files between
# commands while it is held (how bench/results/*recipe_study_h200* were made). Each command travels with
# the working tree; the data travels in parts (an upload cap per command), so:
#
#   here (CPU):  build the profile's corpus (the command `bench/recipe_study.py prepare` prints), then
#     .venv/bin/python bench/recipe_study.py prepare --out .study/rg --profile research_gpu \
#         --cap agent=2.2e7 --cap code=4e7 --sft-every 6 --archive --part-mib 30
#     put the parts in folders that fit one upload each with the wheels (.study/p1/rg.tar.xz.00, ...)
#     and the cp312 wheels the GPU's python lacks in .whl/ (duckdb, pydantic(+core, annotated-types,
#     typing-inspection), jsonschema(+specifications, referencing, rpds-py)); keep .study/ and .whl/ ignored.
#   there:  bash bench/recipe_study_device.sh stash      (once per part folder carried; first also .whl)
#           bash bench/recipe_study_device.sh unpack
#           bash bench/recipe_study_device.sh launch BUDGET_S   (the whole study, in the background)
#           bash bench/recipe_study_device.sh wait SECONDS      (repeat; results to $OUT each time)
#           bash bench/recipe_study_device.sh extra [SECONDS]   (after it: decode-kernel and multi-turn benches;
#                                                                GENERATE=1 adds the model.generate baseline)
#
# Leave TOKENIZERS_PARALLELISM unset there: with it off the mixtures are tokenized on one thread, and the
# grid's packing alone ran past 10 minutes on 2026-12-02 (the study warns when it is off).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 DAGSTER_DISABLE_TELEMETRY=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1
export PYTHONUNBUFFERED=1
unset TOKENIZERS_PARALLELISM
S=${STUDY_DIR:-/tmp/study}
OUT=${OUT:-$S/export}
mkdir -p "$S/parts" "$S/site" "$OUT"
export PYTHONPATH=$S/site
mode=${1:-stash}
case "$mode" in
  stash)  # the carried parts (and, once, the wheels) to where they outlive the next command's tree
    if [ ! -f "$S/site/.done" ] && ls .whl/*.whl >/dev/null 2>&1; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$S/site" .whl/*.whl \
        && touch "$S/site/.done"
    fi
    cp .study/p*/* "$S/parts/" 2>/dev/null
    ls -la "$S/parts"
    python3 -c 'import duckdb, pydantic, jsonschema; print("deps ok")' ;;
  unpack)
    cat "$S"/parts/rg.tar.xz.* | tar xJ -C "$S" && du -sh "$S/rg" ;;
  launch)  # a copy of the tree (the next command replaces the tree), then the study in its own session
    rm -rf "$S/repo" && mkdir -p "$S/repo"
    tar --exclude=./.study --exclude=./.whl -cf - . | tar xf - -C "$S/repo"
    python3 -c 'import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__, torch.cuda.get_device_name())' \
      > "$S/versions.txt" 2>&1
    cat "$S/versions.txt"
    date +%s > "$S/t0"
    setsid nohup bash -c "cd $S/repo && python3 bench/recipe_study.py run --data $S/rg --out $S/out --work $S/work --budget-s ${2:?budget seconds}; echo EXIT=\$? >> $S/study.log; date +%s > $S/t1" \
      >> "$S/study.log" 2>&1 < /dev/null &
    sleep 30; tail -5 "$S/study.log" ;;
  wait)  # until the study ends or SECONDS pass; then the results so far to $OUT
    end=$(( $(date +%s) + ${2:?seconds} ))
    while [ ! -f "$S/t1" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 10; done
    (cd "$S/repo" && python3 bench/recipe_study.py run --data "$S/rg" --out "$S/out" --work "$S/work" --report-only) > "$S/report.log" 2>&1
    echo "since launch: $(( $(date +%s) - $(cat "$S/t0") )) s"
    [ -f "$S/t1" ] && echo "finished after $(( $(cat "$S/t1") - $(cat "$S/t0") )) s"
    cp "$S"/out/results.md "$S"/out/results.json "$S"/out/*.png "$S"/out/grid.jsonl "$S/versions.txt" "$OUT"/ 2>/dev/null
    cp "$S/study.log" "$OUT/study.log"
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    ls "$S/work/steps" 2>/dev/null | tr '\n' ' '; echo; tail -15 "$S/study.log" ;;
  extra)  # the engine benches, on the BFCL data carried as .study/p*/bfcl.tar.xz (bfcl_eval/ of the wheel)
    mkdir -p "$S/mt" && tar xJf "$S/parts/bfcl.tar.xz" -C "$S/mt"
    cd "$S/repo" || exit 1
    python3 bench/decode_attention.py --out "$OUT/decode_attention.txt"
    # varlen first (the default on CUDA) with the two-lane run (overlap=True) beside it, then sdpa; with
    # GENERATE=1 also batched model.generate driving the same conversations (the issue's baseline; long)
    timeout "${2:-400}" python3 bench/bfcl_multi_turn_throughput.py --data "$S/mt/bfcl_eval/data" --out "$OUT/mt.txt" \
      --skip-no-reuse $([ "${GENERATE:-0}" = 1 ] || echo --skip-generate) --decode-attention varlen sdpa 2>&1 | tail -20 ;;
  *) echo "usage: $0 stash|unpack|launch BUDGET_S|wait SECONDS|extra [SECONDS]" >&2; exit 2 ;;
esac
