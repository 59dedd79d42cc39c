#!/bin/bash
# Runs "$@" once the machine has been idle (≥ 95 % idle CPU over 3 s) — the other builds and emulated test
# runs on a shared 2-core box otherwise halve the 2-thread numbers. Gives up waiting after $MAX_WAIT seconds
# (default 1200) and runs anyway, saying so.
MAX_WAIT=${MAX_WAIT:-1200}
start=$(date +%s)
idle() {
    read -r _ u1 n1 s1 i1 w1 _ < /proc/stat; sleep 3; read -r _ u2 n2 s2 i2 w2 _ < /proc/stat
    local busy=$(( (u2 + n2 + s2) - (u1 + n1 + s1) )) total=$(( (u2 + n2 + s2 + i2 + w2) - (u1 + n1 + s1 + i1 + w1) ))
    [ $(( busy * 100 )) -le $(( total * 5 )) ]
}
until idle; do
    if [ $(( $(date +%s) - start )) -ge "$MAX_WAIT" ]; then echo "when-idle: machine still busy after ${MAX_WAIT}s; measuring anyway" >&2; break; fi
done
exec "$@"
