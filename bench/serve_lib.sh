# Sourced by bench/serve.sh and bench/serve_raw.sh (from the repository root).
# wait_up ADDR: wait (up to 60 s: the raw model loads two encoders) until a server answers GET /v2/health/live.
wait_up() { for _ in $(seq 600); do curl -sf "http://$1/v2/health/live" >/dev/null && return; sleep 0.1; done; echo "no server on $1" >&2; exit 1; }
# peak_rss PATTERN: the peak resident memory (kB) of every process whose command line matches, summed.
peak_rss() { local total=0; for pid in $(pgrep -f "$1"); do total=$((total + $(awk '/VmHWM/ {print $2}' /proc/$pid/status))); done; echo "$total"; }
