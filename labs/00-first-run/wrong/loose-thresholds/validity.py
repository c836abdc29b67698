"""Lab 00, a known wrong solution: every threshold a little loose.

Each rule is right in kind but drawn in the wrong place: steal above 4% instead of 2%,
background load above half a CPU instead of a quarter, a fixed rate 2.5% short instead of 2%,
and a server CPU below 80% instead of 90% as client-bound. The check before issue 30 probed each
threshold only at T and far from it (steal 2% and 5%, 1.5% and 3% short, server CPU 90% and
60%), so it passed this file.
"""

MAX_STEAL = 0.04
MAX_BACKGROUND_CPUS = 0.5
MAX_RATE_SHORTFALL = 0.025
SERVER_SATURATED_CPU = 0.80
CLIENT_SATURATED_CPU = 0.90


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
    short = cell["offered_rate"] and cell["achieved_rate"] < cell["offered_rate"] * (
        1 - MAX_RATE_SHORTFALL)
    if cell["kind"] == "fixed" and short:
        reasons.append(f"achieved {cell['achieved_rate']:.0f}/s of {cell['offered_rate']:.0f}/s")
    if cell["kind"] in ("saturation", "closed") and cell["server_cpu_util"] < SERVER_SATURATED_CPU:
        reasons.append(f"client-bound (server CPU {cell['server_cpu_util']:.0%})")
    elif cell["kind"] == "closed" and cell["client_cpu_util"] >= CLIENT_SATURATED_CPU:
        reasons.append(f"client-bound (client CPU {cell['client_cpu_util']:.0%})")
    return reasons
