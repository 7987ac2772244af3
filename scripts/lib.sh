# Shared shell helpers for scripts that start servers (sourced, not run): a temp dir,
# background processes tracked by PID and stopped on exit, free loopback ports.
# After sourcing: `tmp` is a fresh directory; `track PID` registers a process to stop.
tmp=$(mktemp -d)
pids=()
track() { pids+=("$1"); }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
