#!/usr/bin/env bash
# Makes the screenshots of docs/monitoring/: four 20-task CUB runs (semi-synthetic
# features from the real metadata, 1 epoch per task to save CPU) into one folder,
# TensorBoard on 127.0.0.1, then headless Chromium (screenshots.py).
#
#   docs/monitoring/make_screenshots.sh DATA_DIR [RUNS_DIR] [PORT]
#
# DATA_DIR holds CUB_meta.npz (or an xlsa17 folder); RUNS_DIR (default
# runs/monitoring) is reused if it already holds the four runs. Run from the repository
# root with czsl installed; PYTHON (default: python) is the interpreter with czsl and
# TensorBoard, SCREENSHOT_PYTHON (default: $PYTHON) the one with Selenium (see
# screenshots.py).
set -euo pipefail
data_dir=${1:?usage: make_screenshots.sh DATA_DIR [RUNS_DIR] [PORT]}
runs_dir=${2:-runs/monitoring}
port=${3:-6123}
python=${PYTHON:-python}
shot_python=${SCREENSHOT_PYTHON:-$python}
here=$(cd "$(dirname "$0")" && pwd)

run() {  # run NAME --set ... : one run unless its results.json exists
  local name=$1; shift
  if [[ -f "$runs_dir/$name/results.json" ]]; then return; fi
  OMP_NUM_THREADS=1 "$python" -m czsl.cli run scenarios/cub_czsl.toml --data-dir "$data_dir" \
    --runs-dir "$runs_dir" --name "$name" --no-progress --threads 1 \
    --set train.epochs=1 "$@"
}
run sequential_classnorm
run ewc_online_classnorm --set regularizer=ewc_online
run mas_classnorm --set regularizer=mas
run sequential_no_classnorm --set model.class_norm=false

"$python" -m tensorboard.main --logdir "$runs_dir" --host 127.0.0.1 --port "$port" \
  >/dev/null 2>&1 &
tensorboard_pid=$!
trap 'kill "$tensorboard_pid"' EXIT
sleep 8  # TensorBoard reads the event files before it answers
"$shot_python" "$here/screenshots.py" --url "http://127.0.0.1:$port" --out "$here"
