#!/usr/bin/env bash
# The GPU checks of issue 16, in one run on a lent CUDA machine (under 5 minutes on an H200):
# the CUDA tests, then the digits pipeline benchmark with --device cuda. Everything goes to $OUT.
#
# The machine has torch, torchvision, timm, scikit-learn, scipy, matplotlib, tqdm, safetensors and
# pytest, not faiss-cpu nor captum: carry their wheels in .whl/ (docs/BENCHMARKS.md, "GPU checks"):
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       --platform manylinux_2_28_x86_64 --no-deps -d .whl faiss-cpu==1.15.1 captum==0.9.0
# Run from the repository root: OUT=/some/folder bash scripts/gpu_checks.sh
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
set -u
OUT=${OUT:?set OUT to the folder that receives the results}
mkdir -p "$OUT"
export PROBE_NO_PROGRESS=1
status=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to $OUT/NAME.log, note the exit status
    local name=$1 limit=$2
    shift 2
    local began=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc in $((SECONDS - began)) s" | tee -a "$OUT/summary.txt"
    [ "$rc" -eq 0 ] || status=1
}

{
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
    python3 -c 'import sys, torch, torchvision, faiss, captum
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "torchvision", torchvision.__version__, "faiss", faiss.__version__, "faiss GPUs", faiss.get_num_gpus(),
      "captum", captum.__version__, "GPU", torch.cuda.get_device_name(0))'
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

# The CUDA tests (marked gpu), and the device helpers (they move a tensor to the GPU through pinned memory).
step cuda_tests 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/pipeline/test_cuda.py \
    tests/evaluation/test_cuda.py tests/attribution/test_attribution_api.py --junitxml="$OUT/cuda_tests.xml"
step device_tests 30 python3 -m pytest -q -p no:cacheprovider tests/foundation/test_devices.py

# The digits case on the GPU: the whole run against its own extraction stage (docs/BENCHMARKS.md, issue 16).
step digits_cuda 110 python3 scripts/bench_pipeline.py --case digits --device cuda --work "$OUT/digits" \
    --json "$OUT/digits_cuda.json"
rm -rf "$OUT/digits/digits-60" "$OUT/digits/run-digits/cache"  # inputs and feature cache: not results

cat "$OUT/summary.txt"
exit $status
