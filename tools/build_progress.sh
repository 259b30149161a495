# Progress for long builds; sourced by tools/setup_env.sh (and by tests/test_setup.py).
#
# run_with_progress runs a build in the background with its output going to a log file, and
# every few seconds prints one line with the ninja units done out of the total, the elapsed
# time, a rough time left at the rate so far, and where the log is:
#   [setup] mmcv: 37/77 units, 3m12s elapsed, about 3m left at this rate (log: /path/to/log)

# format_duration SECONDS: 192 -> 3m12s, 45 -> 45s
format_duration() {
    if [ "$1" -ge 60 ]; then echo "$(($1 / 60))m$(printf '%02d' $(($1 % 60)))s"; else echo "$1s"; fi
}

# ninja_units LOG: "DONE TOTAL" from the last ninja status line ("[37/77] c++ ...") in LOG,
# or nothing before ninja has started.
ninja_units() {
    grep -oE '(^|[[:space:]])\[[0-9]+/[0-9]+\] ' "$1" 2>/dev/null | tail -n 1 \
        | tr -d '[] ' | tr '/' ' ' || true
}

# progress_line LABEL LOG ELAPSED: the line run_with_progress prints.
progress_line() {
    local label="$1" log="$2" elapsed="$3" units done total rest=""
    units="$(ninja_units "$log")"
    if [ -z "$units" ]; then
        echo "[setup] $label: preparing the build (no unit compiled yet)," \
             "$(format_duration "$elapsed") elapsed (log: $log)"
        return
    fi
    read -r done total <<<"$units"
    if [ "$done" -ge 3 ] && [ "$done" -lt "$total" ]; then
        rest=", about $(format_duration $(((total - done) * elapsed / done))) left at this rate"
    elif [ "$done" -eq "$total" ]; then
        rest=", linking and packing the wheel"
    fi
    echo "[setup] $label: $done/$total units, $(format_duration "$elapsed") elapsed$rest" \
         "(log: $log)"
}

# run_with_progress LABEL LOG INTERVAL COMMAND...: run COMMAND with stdout and stderr in LOG,
# print progress_line to stderr every INTERVAL seconds; return COMMAND's exit status.
# COMMAND runs in its own process group (set -m), so that Ctrl-C or a kill of this script
# stops the whole build (compiler processes included) instead of leaving it running.
run_with_progress() {
    local label="$1" log="$2" interval="$3" start=$SECONDS pid status=0 waited=0
    shift 3
    set -m
    "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    set +m
    trap 'kill -TERM -- "-$pid" 2>/dev/null; echo "[setup] $label: build stopped" >&2; exit 130' \
        INT TERM
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        waited=$((waited + 1))
        if [ "$waited" -ge "$interval" ] && kill -0 "$pid" 2>/dev/null; then
            progress_line "$label" "$log" $((SECONDS - start)) >&2
            waited=0
        fi
    done
    wait "$pid" || status=$?
    trap - INT TERM
    echo "[setup] $label: finished in $(format_duration $((SECONDS - start)))" \
         "(exit status $status, log: $log)" >&2
    return "$status"
}
