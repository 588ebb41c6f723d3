#!/usr/bin/env bash
# Issue 29, part 4: the GPU checks and figures, as one script for a lent GPU machine (the `run`
# tool runs it in the repository root; what it writes under $OUT comes back). Each step has its
# own time limit so that one slow step still leaves the others' figures; the whole script is
# sized for about 8 minutes on one H100/H200-class GPU.
#
#   bash scripts/gpu_check.sh            # writes $OUT/gpu_*.txt (default OUT: ./gpu_out)
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

step() {  # step NAME SECONDS COMMAND...: run it, keep its output and exit status
    local name=$1 limit=$2; shift 2
    echo "== $name ($(date -u +%T))"
    { echo "\$ $*"; timeout "$limit" "$@"; echo "exit status $?"; } > "$OUT/gpu_$name.txt" 2>&1
    tail -n 3 "$OUT/gpu_$name.txt"
}

step device 30 bash -c "nvidia-smi; $PY -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name(0))'"
step cuda_tests 150 "$PY" -m pytest -q -p no:cacheprovider tests/probe/test_cuda.py tests/probe/test_scan.py tests/probe/test_matrix_state.py -k "cuda or gpu or fla"
step scan 120 "$PY" benchmarks/scan.py --device cuda --T 1024 4096 16384 --repeats 5
step ensemble 90 "$PY" benchmarks/ensemble.py --device cuda --members 1 16 256 --archs gru
step parallel_rnn 90 "$PY" benchmarks/parallel_rnn.py --device cuda --repeats 3
step matrix_state 60 "$PY" benchmarks/matrix_state.py --device cuda --T 1024 4096
echo "figures in $OUT; put them with the command and the device in the README (issue 29, part 4)"
