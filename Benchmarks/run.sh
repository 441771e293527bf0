#!/usr/bin/env bash
# Builds recurd (release) and runs the benchmarks against their peers on this machine:
#   Benchmarks/run.sh [all|compare|load|learning|store|forecast|forecast-corpus|nab|text] [--quick]
#   compare   step, batched step and fit against PyTorch and ONNX Runtime (compare.py)
#   load      end-to-end daemon load against a pyzmq + ONNX Runtime server (load.py)
#   learning  learning quality against PyTorch and persistence (learning.py)
#   store     the stream store: memory per stream, a flood of keys, returning streams (store.py)
#   forecast  published forecasts against persistence, the running mean and other baselines (forecast.py)
#   forecast-corpus  the default setting on every series of the NAB corpus (NAB_DIR, default ../shared/tools/nab)
#   nab       anomaly scores on the Numenta Anomaly Benchmark, scored by NAB's own scorer (nab.py);
#             needs ../shared/tools/nab (or NAB_DIR) and makes a pandas-1.x venv under .build/nabenv
#   text      progressive bits/byte of text streams against bzip2 and xz (text.py)
#   all       compare, load, learning, store and forecast, one after the other (the default)
# Run from anywhere; remaining arguments go to the script(s), e.g. --quick.
#
# Python environment — the first that applies:
#   1. $RECURD_BENCH_VENV, if set: used as is if it imports the peers' packages, otherwise created
#      (python3 -m venv) if missing and filled with pip.
#   2. /root/venv, if that directory exists and already imports all the packages (the prepared
#      environment of our build machines); never modified.
#   3. $HOME/.cache/recurd-bench/venv: created and filled with pip on first use, reused after.
# No environment is ever created inside the repository. The packages: torch onnx onnxruntime
# safetensors numpy (plain `pip install`; pip's own PIP_INDEX_URL etc. apply, e.g. for CPU-only
# torch wheels).
#
# RECURD_BENCH_NO_BUILD=1 skips the build (use the binary that is there, or --recurd PATH).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PACKAGES=(torch onnx onnxruntime safetensors numpy pyzmq)
CHECK='import torch, onnx, onnxruntime, safetensors, numpy, zmq'

if [[ "${RECURD_BENCH_NO_BUILD:-0}" != 1 ]]; then
    swift build -c release --product recurd
fi

has_packages() { [[ -x "$1/bin/python" ]] && "$1/bin/python" -c "$CHECK" 2>/dev/null; }

if [[ -n "${RECURD_BENCH_VENV:-}" ]]; then
    VENV="$RECURD_BENCH_VENV"
elif [[ -d /root/venv ]] && has_packages /root/venv; then
    VENV=/root/venv
else
    VENV="$HOME/.cache/recurd-bench/venv"
fi

if ! has_packages "$VENV"; then
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "run.sh: creating a Python venv at $VENV" >&2
        mkdir -p "$(dirname "$VENV")"
        python3 -m venv "$VENV"
    fi
    echo "run.sh: installing ${PACKAGES[*]} into $VENV" >&2
    "$VENV/bin/python" -m pip install --upgrade pip >&2
    "$VENV/bin/python" -m pip install "${PACKAGES[@]}" >&2
    "$VENV/bin/python" -c "$CHECK"
fi
echo "run.sh: Python from $VENV" >&2

export OPENBLAS_NUM_THREADS=1
WHICH=all
case "${1:-}" in
    all|compare|load|learning|store|forecast|forecast-corpus|nab|text) WHICH=$1; shift ;;
esac
if [[ "$WHICH" == nab ]]; then
    NAB_DIR="${NAB_DIR:-../shared/tools/nab}"
    NABENV="$PWD/.build/nabenv"   # absolute: the scorer runs in its own working copy
    if ! "$NABENV/bin/python" -c 'import pandas, simplejson, dateutil' 2>/dev/null; then
        echo "run.sh: creating NAB's scorer environment at $NABENV (pandas 1.5.3, numpy < 2)" >&2
        python3 -m venv "$NABENV"
        "$NABENV/bin/pip" install -q "pandas==1.5.3" "numpy<2" simplejson python-dateutil >&2
    fi
    exec "$VENV/bin/python" Benchmarks/nab.py --nab "$NAB_DIR" --nab-python "$NABENV/bin/python" "$@"
fi
if [[ "$WHICH" == forecast-corpus ]]; then
    NAB_DIR="${NAB_DIR:-../shared/tools/nab}"
    mapfile -t SERIES < <(find "$NAB_DIR/data" -name '*.csv' | sort)
    exec "$VENV/bin/python" Benchmarks/forecast.py --configs 1 --series "${SERIES[@]}" --output Benchmarks/results/forecast-corpus.md "$@"
fi
if [[ "$WHICH" == text ]]; then
    exec "$VENV/bin/python" Benchmarks/text.py "$@"
fi
for b in compare load learning store forecast; do
    if [[ "$WHICH" == all || "$WHICH" == "$b" ]]; then
        "$VENV/bin/python" "Benchmarks/$b.py" "$@"
    fi
done
