// Where lab08_pingpong's threads may run: the exercise (pin.cpp in exercise/ and solution/).
#pragma once

#include <span>

// Called once by main(), after the flags are read and before the threads start, with the CPUs
// of --pin (empty without it).
void pin_process(std::span<const int> cpus);

// Called by thread `index` (0 ping, 1 pong) first thing after it starts, with the same CPUs.
// Throws std::runtime_error when the CPU cannot be used.
void pin_thread(std::span<const int> cpus, int index);
