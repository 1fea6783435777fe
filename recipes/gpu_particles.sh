#!/bin/bash
# Particle models (issue 18) trained on a lent GPU machine that has JAX but no TensorFlow: Keras runs on JAX.
#
#   bash recipes/gpu_particles.sh stage   # here: .gpu/ (box images) and .whl/ (Keras wheels), both git-ignored
#   bash recipes/gpu_particles.sh run     # there, through the device tool with carry [".gpu", ".whl"]
#   python benchmarks/particles_real.py --folds 2 --steps 10000 --batch-size 32 --polarity bright \
#       --variants pretrained --min-area 50 --scale-rule auto --scale-rule boxes --cache CACHE \
#       --json benchmarks/results/particles_real_gpu.json --no-docs     # here: scores the fold models
#
# What ran on 2026-11-30 (one H200, 15 minutes of device time; docs/benchmarks.md "Particle models trained on
# a GPU"): an earlier form of `run` that queued, each under a deadline, the two 10,000-step folds, the shipped
# recipe at 10,000 steps, the folds at 3,000 steps and at target_particle_px 24. Steps ran at ~50/s (host-bound
# train_on_batch), so only fold 1 finished (199 s); the rest were cut off. Fold 2 then ran alone
# (ONLY_FOLDS=2: 201 s). Nothing else came back.
# The fold models come back as tar files of CACHE/KEY/{model.keras,train.json}; untar them into CACHE.
# CV_UNTIL=0 skips the folds and trains only the shipped recipe (ship.tar: runs/nanoparticles_sSTEPS/model.keras);
# to ship it, set recipes/nanoparticles.json to those steps and batch 32, put the model at
# runs/nanoparticles/model.keras and run `python recipes/ship.py nanoparticles --ship` here (it reuses the
# model, measures its particle size on TensorFlow and exports it).
# Only the tracked tree, .gpu and .whl travel (64 MiB in all): the eight large TIFFs go as lossless PNG
# (8-bit images, checked equal after reading), the 14 JPEGs and the labels as they are.
set -o pipefail
BOXES_SRC=${BOXES_SRC:-../shared/real_micrographs/nanoparticle_boxes}

if [ "$1" = stage ]; then
  rm -rf .gpu && mkdir -p .gpu/real .whl && cp -r "$BOXES_SRC" .gpu/real/
  grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
  grep -qx "/.whl/" .git/info/exclude || echo "/.whl/" >> .git/info/exclude
  python - "$BOXES_SRC/.." <<'PY'
import glob, os, sys
import numpy as np, tifffile
from PIL import Image
for path in sorted(glob.glob(os.path.join(sys.argv[1], "arda__*.tif"))):
    image = tifffile.imread(path)
    out = os.path.join(".gpu", "real", os.path.basename(path)[:-4] + ".png")
    Image.fromarray(image).save(out, optimize=True)
    assert np.array_equal(np.asarray(Image.open(out)), image), out
PY
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl keras==3.15.1 namex optree
  du -sh .gpu .whl
  exit
fi

# run (on the GPU machine; $OUT comes back)
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L | tee $OUT/log.txt
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" 2>&1 | tee -a $OUT/log.txt
BOXES=.gpu/real/nanoparticle_boxes
CV="benchmarks/particles_real.py --data $BOXES --folds 2 --batch-size 32 --polarity bright --variants pretrained
    --train-only --synthetic-simulated --json /tmp/x.json --no-docs"
pack() { for d in /tmp/c_*; do [ -d $d ] && tar cf $OUT/$(basename $d).tar -C $d .; done
         [ -d /tmp/runs ] && tar cf $OUT/ship.tar -C /tmp runs; }
step() {  # NAME, seconds from the start by which it must end, command...
  local name=$1 budget=$(( $2 - ($(date +%s) - T0) )); shift 2
  if [ "$budget" -lt 30 ]; then echo "SKIP $name (no time)" | tee -a $OUT/log.txt; return; fi
  echo "=== $name (budget ${budget}s)" | tee -a $OUT/log.txt
  timeout $budget python3 "$@" 2>&1 | grep -v "UserWarning\|return jnp.asarray\|libtpu" | tee -a $OUT/log.txt
  echo "=== $name done rc=$? t=$(( $(date +%s) - T0 ))s" | tee -a $OUT/log.txt
  pack
}
STEPS=${STEPS:-10000}
python3 - $STEPS <<'PY'
import json, sys
recipe = json.load(open("recipes/nanoparticles.json"))
recipe["train_on_boxes"].update(steps=int(sys.argv[1]), batch_size=32)
json.dump(recipe, open(f"recipes/nanoparticles_s{sys.argv[1]}.json", "w"), indent=1)
PY
step cv_s$STEPS ${CV_UNTIL:-500} $CV --steps $STEPS --cache /tmp/c_s$STEPS ${ONLY_FOLDS:+--only-folds $ONLY_FOLDS}
step ship_s$STEPS ${SHIP_UNTIL:-560} recipes/ship.py nanoparticles_s$STEPS --runs /tmp/runs --boxes $BOXES --synthetic-simulated
echo "total $(( $(date +%s) - T0 ))s" | tee -a $OUT/log.txt
