"""Lab 00 exercise, part 2: Little's law and where tail latency comes from. YOUR TASK: write both
functions (the README's Background explains both laws; Predict 4 and 5 ask the questions first).
"""


def closed_loop_rate(connections, latency_s, think_s=0.0):
    """Requests/s of a closed loop: `connections` each send one request, wait `latency_s` for
    its answer, then `think_s` before the next."""
    raise NotImplementedError("TODO(lab 00): Little's law")


def fixed_rate_latencies(rate, service_s):
    """An open loop sends request i at i / rate seconds to one server that answers requests in
    order, request i taking service_s[i] seconds of its time. Return each request's latency in
    seconds, counted as loadgen --rate counts it (bench/loadgen/README.md)."""
    raise NotImplementedError("TODO(lab 00): queueing at a fixed rate")
