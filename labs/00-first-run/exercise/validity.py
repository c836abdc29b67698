"""Lab 00 exercise: which figures of a run can you stand behind? YOUR TASK: complete problems().

A measurement cell is one server measured once at one point: a fixed offered rate ("fixed"),
pipelined saturation ("saturation") or one request at a time per connection ("closed"). The
harness (bench/iolab_bench/validity.py) keeps a cell's figures only when nothing disturbed them, and
otherwise prints them with "!" and the reason. problems(cell) returns those reasons; an empty
list means the cell is valid. The cell is a dict with these keys (fractions are 0..1):

  kind               "fixed", "saturation" or "closed"
  errors             responses that were wrong, late or missing
  steal              fraction of CPU time the hypervisor gave to other machines
  background_cpus    CPUs' worth of time used by other processes during the window
  listen_overflows   connections the kernel dropped because the accept queue was full
  offered_rate       requests/s asked for (fixed only), achieved_rate: requests/s delivered
  server_cpu_util    the server's CPU use during the window (1.0 = one whole CPU)
  client_cpu_util    the load generator's CPU use during the window

Write one reason per problem, in any words, but each must contain the word the check looks for:
"error", "steal", "background", "overflow", "achieved" (the rate fell short by more than 2%)
or "client-bound" (the figure measures the load generator, not the server). The thresholds
are in the README's Exercise section; `make lab-00-check` compares your answers with the
harness on a set of cells, one problem at a time and a few together.
"""


def problems(cell):
    reasons = []
    if cell["errors"]:
        reasons.append(f"{cell['errors']} errors")
    # TODO(lab 00): steal, background load, listen overflows, a fixed rate not achieved, and a
    # throughput that measures the client rather than the server.
    return reasons
