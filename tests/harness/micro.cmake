# Tests of bench/micro and bench/perf (label `tools`). Standard library Python with Debian's
# interpreter. They add about 16 s to `make test` on 2 CPUs:
#   micro.smoke.<topic>  each build/bin/micro_<topic> runs every benchmark once (min time 0)
#                        and every benchmark carries a claim id (C01...) in its label;
#   micro.perf_tools     the folded-stack renderer and the output parsers on fixtures, and each
#                        bench/perf script for real (perf, strace, hyperfine) and on its degraded
#                        paths (perf refused, tools missing), with fake tools;
#   micro.run_micro      bench/micro/run_micro.py (make micro) with fake suites.
foreach(topic syscalls switch cache ipc alloc http)
  add_test(NAME micro.smoke.${topic}
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/micro_smoke_test.py
            ${CMAKE_BINARY_DIR}/bin/micro_${topic})
  set_tests_properties(micro.smoke.${topic} PROPERTIES LABELS tools TIMEOUT 60)
endforeach()
# Pinned ping-pongs and 256 MiB of pointer chasing: not alongside load-sensitive tests.
set_tests_properties(micro.smoke.switch micro.smoke.ipc micro.smoke.cache PROPERTIES RUN_SERIAL TRUE)

add_test(NAME micro.perf_tools
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/perf_tools_test.py ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(micro.perf_tools PROPERTIES LABELS tools RUN_SERIAL TRUE TIMEOUT 120)
# Its modules are scripts in bench/perf (Debian's linux-perf owns the module name "perf").
set_property(TEST micro.perf_tools APPEND PROPERTY ENVIRONMENT_MODIFICATION
  "PYTHONPATH=path_list_prepend:${PROJECT_SOURCE_DIR}/bench/perf")

add_test(NAME micro.run_micro
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/run_micro_test.py)
set_tests_properties(micro.run_micro PROPERTIES LABELS tools TIMEOUT 60)
