#!/usr/bin/env bash
# Copy the datasets the GPU run needs into .gpu-data/ (ignored by git), with their checksums, in parts that
# fit one device call each with the working tree (64 MiB): p1 = MNIST + CIFAR-10 test; p2 = train_0, train_1;
# p3 = train_2, train_3; p4 = train_4. Carry .gpu-data/p1 in the first call and the others in the next ones
# while the machine is warm; there, `bash scripts/pack-gpu-data.sh --merge` joins the parts into .gpu-data/ for gpu-full.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--merge" ]; then
    cat .gpu-data/p*/SHA256SUMS > .gpu-data/SHA256SUMS
    for part in .gpu-data/p*; do cp -r "$part"/mnist "$part"/cifar10 .gpu-data/ 2>/dev/null || true; done
    exit 0
fi
SRC="${1:-${CLAIMBENCH_DATA_DIR:-../shared/datasets}}"
rm -rf .gpu-data && mkdir -p .gpu-data/p1/mnist .gpu-data/p1/cifar10 .gpu-data/p2/cifar10 .gpu-data/p3/cifar10 \
    .gpu-data/p4/cifar10
cp "$SRC/mnist/mnist.npz" .gpu-data/p1/mnist/
cp "$SRC/cifar10/cifar10_test.npz" .gpu-data/p1/cifar10/
cp "$SRC/cifar10/cifar10_train_0.npz" "$SRC/cifar10/cifar10_train_1.npz" .gpu-data/p2/cifar10/
cp "$SRC/cifar10/cifar10_train_2.npz" "$SRC/cifar10/cifar10_train_3.npz" .gpu-data/p3/cifar10/
cp "$SRC/cifar10/cifar10_train_4.npz" .gpu-data/p4/cifar10/
for part in p1 p2 p3 p4; do
    (cd .gpu-data/$part && find . -name '*.npz' | sed 's|^\./||' | sort | xargs sha256sum > SHA256SUMS)
    du -sh ".gpu-data/$part"
done
