#!/bin/sh
# Seconds per epoch of `backprop train` on the small (784-128-64-10, batch 64) and wide
# (784-1024-1024-10, batch 256) networks of bench/README.md, on 4,096 random 784-pixel
# examples: one process of 1 thread (whole batches, and blocks), one process of 2 threads,
# and 2 MPI ranks of 1 thread each. Runs are interleaved round by round, and each figure
# is printed with the load average at its start, so a busy machine shows.
#
#   cargo build --release --features mpi --bin backprop
#   bench/mpi_scaling.sh [ROUNDS]      # default 3; BACKPROP=path overrides the binary
set -eu
ROUNDS=${1:-3}
BIN=${BACKPROP:-$(dirname "$0")/../target/release/backprop}
[ -x "$BIN" ] || { echo "$BIN: not built; run cargo build --release --features mpi --bin backprop" >&2; exit 1; }
EPOCHS=3
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
MPIRUN="mpirun --allow-run-as-root --oversubscribe"

# label first, then 784 pixels in [0, 1): the same file on every run.
awk 'BEGIN { srand(7); for (i = 0; i < 5120; i++) { printf "%d", int(rand() * 10);
  for (j = 0; j < 784; j++) printf ",%.4f", rand(); printf "\n" } }' >"$DIR/random.csv"

# Mean seconds of the epochs after the first (the log's `seconds` column, training and
# evaluation of the epoch; start-up and MPI's are left out).
per_epoch() {
    awk -F, 'NR > 2 { s += $6; n++ } END { printf "%.3f", s / n }' "$1"
}

run() { # name, block, launcher...
    name=$1 block=$2
    shift 2
    load=$(cut -d' ' -f1 /proc/loadavg)
    "$@" "$BIN" train --data "$DIR/random.csv" --test-split 0.2 --epochs $EPOCHS \
        --activation relu --lr 0.1 $NET $block --log "$DIR/log.csv" >/dev/null 2>"$DIR/err" ||
        { echo "$name failed:" >&2; cat "$DIR/err" >&2; exit 1; }
    printf '%-6s %-34s %8s s/epoch   load %s\n' "$CONFIG" "$name" "$(per_epoch "$DIR/log.csv")" "$load"
}

printf '%-6s %-34s %10s\n' network run "time"
for round in $(seq "$ROUNDS"); do
    for CONFIG in small wide; do
        if [ $CONFIG = small ]; then NET="--hidden 128,64 --batch 64" B=16; else NET="--hidden 1024,1024 --batch 256" B=64; fi
        run "1 process, 1 thread, whole batch" "" env RAYON_NUM_THREADS=1
        run "1 process, 2 threads, whole batch" "" env RAYON_NUM_THREADS=2
        run "1 process, 1 thread, blocks of $B" "--block $B" env RAYON_NUM_THREADS=1
        run "1 process, 2 threads, blocks of $B" "--block $B" env RAYON_NUM_THREADS=2
        run "2 ranks of 1 thread, blocks of $B" "--block $B" $MPIRUN -np 2 -x RAYON_NUM_THREADS=1
    done
done
