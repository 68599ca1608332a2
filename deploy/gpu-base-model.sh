#!/usr/bin/env bash
# base-3 on one lent GPU machine in about 10 minutes: synthesize the training pages with every core, fine-tune
# with bf16 (TrainConfig precision "auto"), evaluate the held-out families in both polarities into the card, and
# write the artifact, its card and the step timings to OUT. The same recipe as `make base-model` stage 3, sized
# for a GPU: more pages, larger batches, more steps. Test it anywhere with tiny settings, e.g.
#   PAGES=12 VAL_PAGES=4 HELDOUT_PAGES=4 STEPS=2 BATCH=4 OUT=/tmp/gpu deploy/gpu-base-model.sh
# Settings (environment): OUT (required), INIT (artifact to start from; default: the shipped model), PAGES,
# VAL_PAGES, HELDOUT_PAGES, STEPS, BATCH, LR, WORKERS (default: every core), INKLOOP (the CLI), WORK (scratch).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the artifact, card and timings go to}"
INKLOOP=${INKLOOP:-.venv/bin/inkloop}
PYTHON=${PYTHON:-$(dirname "$INKLOOP")/python}
INIT=${INIT:-model/artifacts/base.pt}
PAGES=${PAGES:-24000}
VAL_PAGES=${VAL_PAGES:-400}
HELDOUT_PAGES=${HELDOUT_PAGES:-400}
STEPS=${STEPS:-4000}
BATCH=${BATCH:-128}
LR=${LR:-0.002}
WORKERS=${WORKERS:-$(nproc)}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$OUT"
timings="$OUT/timings.tsv"
printf 'step\tseconds\n' >"$timings"
step() { # step NAME COMMAND...: run it, record how long it took
	local name=$1 start=$SECONDS
	shift
	"$@"
	printf '%s\t%d\n' "$name" $((SECONDS - start)) >>"$timings"
}

step synth-train "$INKLOOP" synth --count "$PAGES" --out "$WORK/train" --seed 13 --caps-share 0.3 --realism 0.5 \
	--workers "$WORKERS"
step synth-val "$INKLOOP" synth --count "$VAL_PAGES" --out "$WORK/val" --seed 6 --caps-share 0.3 --realism 0.5 \
	--workers "$WORKERS"
step synth-heldout "$INKLOOP" synth --count "$HELDOUT_PAGES" --out "$WORK/heldout" --seed 3 --font-set heldout \
	--dark-share 0.5 --workers "$WORKERS"
# base-hands.json with the GPU's batch, steps, learning rate and loader processes.
"$PYTHON" - "$WORK/config.json" "$BATCH" "$STEPS" "$LR" "$WORKERS" <<'PY'
import json, sys
out, batch, steps, lr, workers = sys.argv[1:]
config = json.load(open("model/configs/base-hands.json"))
config.update(batch_size=int(batch), max_steps=int(steps), lr=float(lr), num_workers=min(int(workers), 12),
              val_every_steps=max(int(steps) // 4, 1))
json.dump(config, open(out, "w"), indent=2)
PY
step train "$INKLOOP" train --data "$WORK/train" --val "$WORK/val" --config "$WORK/config.json" --init "$INIT" \
	--out "$WORK/run" --version base-3
step evaluate "$INKLOOP" evaluate --model "$WORK/run/model.pt" --data "$WORK/heldout" --into-card heldout_fonts
cp "$WORK/run/model.pt" "$OUT/model.pt"
cp "$WORK/config.json" "$OUT/config.json"
"$PYTHON" -c 'import sys; from model.export import read_card; print(read_card(sys.argv[1]).to_json())' \
	"$OUT/model.pt" >"$OUT/card.json"
cat "$timings"
