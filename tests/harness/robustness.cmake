# Harness robustness (label fault): loadgen, bench/compare.py and bench/run.py against servers
# that crash, never get ready or answer garbage, a wrong flag and Ctrl-C; processes checked by
# PID. About 75 s in all, serial (real loads on loopback).
foreach(suite LoadgenTest CompareTest RunTest)
  add_test(NAME robustness.${suite}
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/harness_test.py ${CMAKE_BINARY_DIR}/bin ${suite})
  set_tests_properties(robustness.${suite} PROPERTIES LABELS "fault;tools" RUN_SERIAL TRUE TIMEOUT 300)
endforeach()
