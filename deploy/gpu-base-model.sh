#!/usr/bin/env bash
# base-3 on one lent GPU machine in about 10 minutes: synthesize the training pages with every core, fine-tune
# with bf16 (TrainConfig precision "auto"), evaluate the held-out families in both polarities into the card, and
# write the artifact, its card and the step timings to OUT. The same recipe as `make base-model` stage 3, sized
# for a GPU: fresh pages (another seed), larger batches, and training bounded by the clock (MINUTES; the learning
# rate decays to zero by then, or by STEPS if those run out first). Test it anywhere with tiny settings, e.g.
#   PAGES=12 VAL_PAGES=4 HELDOUT_PAGES=4 STEPS=2 BATCH=4 OUT=/tmp/gpu deploy/gpu-base-model.sh
# Settings (environment): OUT (required), INIT (artifact to start from; default: the shipped model), VERSION (the
# new model's name; default: the next of INIT's, base-3 -> base-4), PAGES, SEED, VAL_PAGES, HELDOUT_PAGES, STEPS,
# MINUTES, VAL_EVERY, BATCH, LR, WORKERS (default: every core), INKLOOP (the CLI), PYTHON, WORK (scratch),
# BUDGET_S (the whole run's wall-time budget, for a machine lent by the minute: training then gets at most what
# synthesis left, less RESERVE_S for segmenting the pages, exporting and evaluating).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the artifact, card and timings go to}"
INKLOOP=${INKLOOP:-.venv/bin/inkloop}
PYTHON=${PYTHON:-$(dirname "$INKLOOP")/python}
INIT=${INIT:-model/artifacts/base.pt}
PAGES=${PAGES:-12000}
SEED=${SEED:-14}
VAL_PAGES=${VAL_PAGES:-300}
HELDOUT_PAGES=${HELDOUT_PAGES:-200}
STEPS=${STEPS:-20000}
MINUTES=${MINUTES:-4}
VAL_EVERY=${VAL_EVERY:-500}
BUDGET_S=${BUDGET_S:-}
RESERVE_S=${RESERVE_S:-150}
BATCH=${BATCH:-256}
LR=${LR:-0.0015}
WORKERS=${WORKERS:-$(nproc)}
WORK=${WORK:-$(mktemp -d)}
[ -f "$INIT" ] || { echo "INIT $INIT: no such model artifact" >&2; exit 1; }
mkdir -p "$OUT"
VERSION=${VERSION:-$("$PYTHON" -c 'import re, sys
from model.export import read_card
version = read_card(sys.argv[1]).version
number = re.fullmatch(r"base-(\d+)", version)
print(f"base-{int(number[1]) + 1}" if number else f"{version}-gpu")' "$INIT")}
timings="$OUT/timings.tsv"
printf 'step\tseconds\n' >"$timings"
step() { # step NAME COMMAND...: run it, record how long it took
	local name=$1 start=$SECONDS
	shift
	"$@"
	printf '%s\t%d\n' "$name" $((SECONDS - start)) >>"$timings"
}

step synth-train "$INKLOOP" synth --count "$PAGES" --out "$WORK/train" --seed "$SEED" --caps-share 0.3 --realism 0.5 \
	--workers "$WORKERS"
step synth-val "$INKLOOP" synth --count "$VAL_PAGES" --out "$WORK/val" --seed 6 --caps-share 0.3 --realism 0.5 \
	--workers "$WORKERS"
step synth-heldout "$INKLOOP" synth --count "$HELDOUT_PAGES" --out "$WORK/heldout" --seed 3 --font-set heldout \
	--dark-share 0.5 --workers "$WORKERS"
if [ -n "$BUDGET_S" ]; then
	MINUTES=$("$PYTHON" -c 'import sys; m, left = float(sys.argv[1]), int(sys.argv[2]); print(round(min(m, max(left, 30) / 60), 2))' \
		"$MINUTES" $((BUDGET_S - SECONDS - RESERVE_S)))
	echo "training for at most $MINUTES minutes (budget ${BUDGET_S} s, ${SECONDS} s spent)"
fi
# base-hands.json with the GPU's batch, steps, time, learning rate and loader processes.
"$PYTHON" - "$WORK/config.json" "$BATCH" "$STEPS" "$MINUTES" "$LR" "$WORKERS" "$VAL_EVERY" <<'PY'
import json, sys
out, batch, steps, minutes, lr, workers, val_every = sys.argv[1:]
config = json.load(open("model/configs/base-hands.json"))
config.update(batch_size=int(batch), max_steps=int(steps), max_minutes=float(minutes), lr=float(lr),
              num_workers=min(int(workers), 12), val_every_steps=min(int(val_every), int(steps)))
json.dump(config, open(out, "w"), indent=2)
PY
step train "$INKLOOP" train --data "$WORK/train" --val "$WORK/val" --config "$WORK/config.json" --init "$INIT" \
	--out "$WORK/run" --version "$VERSION"
step evaluate "$INKLOOP" evaluate --model "$WORK/run/model.pt" --data "$WORK/heldout" --into-card heldout_fonts
cp "$WORK/run/model.pt" "$OUT/model.pt"
cp "$WORK/config.json" "$OUT/config.json"
"$PYTHON" -c 'import sys; from model.export import read_card; print(read_card(sys.argv[1]).to_json())' \
	"$OUT/model.pt" >"$OUT/card.json"
cat "$timings"
