#!/usr/bin/env bash
# The LTFN families (MNIST ConvNet init and optimiser claims, VGG on MNIST, VGG on CIFAR-10) at the posts'
# scale on one GPU, for a machine that starts bare and reaches no network (the lent H200: its python3 holds
# torch, pytest, pandas, scipy, matplotlib, tabulate and tqdm).
#
#   bash scripts/pack-gpu-data.sh            # here: copy the datasets into .gpu-data/ (ignored by git)
#   bash scripts/gpu-full.sh                 # there: check the inputs, run, write $OUT/report
#   bash scripts/gpu-full.sh --tiny          # anywhere: the same path at the smoke profile on the CPU
#   (further arguments go to pytest, e.g. -k "not fashion")
#
# The datasets travel with the working tree (.gpu-data/ named in the device call's carry list). CIFAR-10 is
# about 170 MB, more than one call carries (64 MiB): pack-gpu-data.sh splits it into parts that successive
# calls carry while the machine stays warm; whatever is missing makes its claims "not run (data)".
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"  # the device machine's python3 holds torch
DATA="${CLAIMBENCH_GPU_DATA:-$PWD/.gpu-data}"
OUT_DIR="${OUT:-$PWD/.gpu-out}"
PROFILE=full
DEVICE=cuda
if [ "${1:-}" = "--tiny" ]; then
    PROFILE=smoke
    DEVICE=cpu
    shift
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" CLAIMBENCH_OFFLINE=1 CI=true
"$PY" scripts/check_gpu_inputs.py "$DATA" --device "$DEVICE"
mkdir -p "$OUT_DIR"
start=$(date +%s)
set +e
"$PY" -m pytest benchmarks/test_init.py benchmarks/test_optimizers.py benchmarks/test_vgg_mnist.py \
    benchmarks/test_cifar.py --profile "$PROFILE" --device "$DEVICE" --data-dir "$DATA" \
    --report-dir "$OUT_DIR/report" -p no:cacheprovider -q -rs --benchmark-disable --durations=15 "$@" \
    | tee "$OUT_DIR/pytest.log"
status=${PIPESTATUS[0]}
set -e
echo "claimbench gpu-full: pytest exit $status (1 = a claim not reproduced), wall $(( $(date +%s) - start )) s"
"$PY" - "$OUT_DIR/report/store" <<'PY'
import sys
from harness.store import Store
runs = [r for r in Store(sys.argv[1]).records() if r.get("kind") == "run"]
by = {}
for r in runs:  # a stacked run's wall_s is its share of its group's time; its images/s the group's throughput
    e = by.setdefault(r["experiment"], [0, 0.0, 0.0, 0])
    e[0] += 1
    e[1] += float(r.get("wall_s") or 0)
    e[2] += float(r.get("images_per_s") or 0)
    e[3] += (r.get("execution") or {}).get("mode") == "stacked"
for exp, (n, wall, ips, stacked) in sorted(by.items()):
    print(f"claimbench gpu-full: {exp}: {n} runs ({stacked} stacked), {wall:.1f} s training, "
          f"mean {ips / max(n, 1):.0f} images/s")
PY
# exit 0 unless pytest itself broke (2+): verdicts are results, not failures of the script
[ "$status" -le 1 ]
