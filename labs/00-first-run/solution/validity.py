"""Lab 00 reference solution: which figures of a run can you stand behind?

The same rules as the harness's cell_problems() (bench/iolab_bench/validity.py), written out
(see exercise/validity.py for the cell's keys).
"""

MAX_STEAL = 0.02             # more than 2% of CPU time stolen by the hypervisor
MAX_BACKGROUND_CPUS = 0.25   # other processes used more than a quarter of a CPU
MAX_RATE_SHORTFALL = 0.02    # a fixed rate delivered more than 2% short
SATURATED_CPU = 0.90         # a CPU at 90% or more is the bottleneck


def problems(cell):
    reasons = []
    if cell["errors"]:
        reasons.append(f"{cell['errors']} errors")
    if cell["steal"] > MAX_STEAL:
        reasons.append(f"steal {cell['steal']:.0%}")
    if cell["background_cpus"] > MAX_BACKGROUND_CPUS:
        reasons.append(f"background load {cell['background_cpus']:.2f} CPUs")
    if cell["listen_overflows"]:
        reasons.append(f"{cell['listen_overflows']} listen overflows")
    if (cell["kind"] == "fixed"
            and cell["achieved_rate"] < cell["offered_rate"] * (1 - MAX_RATE_SHORTFALL)):
        reasons.append(f"achieved {cell['achieved_rate']:.0f}/s of {cell['offered_rate']:.0f}/s")
    # A throughput figure is the server's only when the server's CPU was the saturated one.
    if cell["kind"] in ("saturation", "closed") and cell["server_cpu_util"] < SATURATED_CPU:
        reasons.append(f"client-bound (server CPU {cell['server_cpu_util']:.0%})")
    elif cell["kind"] == "closed" and cell["client_cpu_util"] >= SATURATED_CPU:
        # One request in flight per connection: the client's CPU caps the rate as much.
        reasons.append(f"client-bound (client CPU {cell['client_cpu_util']:.0%})")
    return reasons
