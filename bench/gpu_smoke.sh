#!/usr/bin/env bash
# GPU check of labelleak on a machine with a CUDA build of torch (run from the repository root):
#   bash bench/gpu_smoke.sh DATA.npz OUT_DIR
# 1) the tests that exercise models, oracles and attacks, now with every model on the GPU;
# 2) timings of one paper-scale `sizes` point (1,000 members, full-width CNN7, 200 epochs, HSJA/QEBA with the
#    paper's max_iter 50 / max_eval 10,000), with the shadow set cut to what DATA holds.
set -u
data=${1:?usage: gpu_smoke.sh DATA.npz OUT_DIR}
out=${2:?usage: gpu_smoke.sh DATA.npz OUT_DIR}
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p "$out"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
timeout 200 python3 -m pytest -p no:cacheprovider -q -x tests/pipeline/test_reproduce.py tests/attacks/test_boundary.py \
  tests/models/test_models.py 2>&1 | tail -n 15 | tee "$out/pytest.log"
start=$(date +%s)
timeout 330 python3 -m labelleak.cli reproduce sizes --scale paper --dataset npz --data "$data" \
  --set train_size=[1000] --set shadow_size=3500 --out /tmp/paper1000 --cache-dir /tmp/cache --quiet \
  > "$out/paper1000.log" 2>&1
echo "paper-scale point: exit $? after $(( $(date +%s) - start )) s" | tee -a "$out/paper1000.log"
tail -n 40 "$out/paper1000.log"
cp /tmp/paper1000/summary.md /tmp/paper1000/summary.json "$out/" 2>/dev/null
for f in /tmp/paper1000/runs/*/*/results.json; do
  g=$(basename "$(dirname "$f")"); cp "$f" "$out/results-$g.json"
done
