# Beyond one machine, included from CMakeLists.txt here: the compose file and the
# Dockerfile checked without an engine (about 6 s), bench/run.py --target against a server
# started by hand on loopback (about 10 s), and the netns mode's brief run and interrupted runs,
# skipped with its printed reason when not root or without `ip` (about 7 s), and the netns
# chart drawn from a made-up run (about 3 s).
add_test(NAME tools.containers
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/containers_test.py ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(tools.containers PROPERTIES LABELS tools TIMEOUT 120)
add_test(NAME tools.target
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/target_test.py ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(tools.target PROPERTIES LABELS tools RUN_SERIAL TRUE TIMEOUT 180)
add_test(NAME tools.netns
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/netns_test.py ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(tools.netns PROPERTIES LABELS tools RUN_SERIAL TRUE TIMEOUT 180
  SKIP_RETURN_CODE 77)
add_test(NAME tools.netns_plots
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/netns_plots_test.py)
set_tests_properties(tools.netns_plots PROPERTIES LABELS tools TIMEOUT 60)
