"""Lab 00 reference solution, part 2: Little's law and where tail latency comes from."""


def closed_loop_rate(connections, latency_s, think_s=0.0):
    # Little's law, L = lambda * W: each connection holds one request for latency_s + think_s.
    return connections / (latency_s + think_s)


def fixed_rate_latencies(rate, service_s):
    # Request i is due at i / rate; one server takes them in order. Latency counts from when the
    # request was due, so the queue behind a slow one counts (no coordinated omission).
    latencies, free_at = [], 0.0
    for i, service in enumerate(service_s):
        due = i / rate
        free_at = max(free_at, due) + service
        latencies.append(free_at - due)
    return latencies
