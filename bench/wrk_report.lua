-- Shared by the wrk scripts (loaded with dofile from the repository root): after the run,
-- prints one machine-readable line with the request count, duration, error counts and the
-- latency percentiles in microseconds, including p99.9 (wrk --latency stops at p99).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d " ..
    "p50=%.1f p90=%.1f p99=%.1f p999=%.1f max=%.1f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
