# Tests of the notebooks and their plotting module (label `tools`), with Debian's Python,
# matplotlib, pandas and Jupyter (scripts/install-deps.sh test). They add about 55 s of CPU to
# `make test` on 2 CPUs (82 s wall with -j2 on a shared, busy VM), most of it one Jupyter kernel
# per notebook:
#   notebooks.plots        iolab_plots.py unit tests, no Jupyter (tables, validity, placeholders,
#                          chart marks, reproducible SVG, save's check)
#   notebooks.clean        the notebooks as committed: no outputs, question first, project kernel
#   notebooks.regenerate   committed chart tables (fixture, results/reference/*) rebuilt from rows
#   notebooks.runner       notebooks/charts.py: skips, failures, reference copies
#   notebooks.execute      every notebook executed headless against the fixture run
set(nb_tests ${CMAKE_CURRENT_SOURCE_DIR})
add_test(NAME notebooks.plots COMMAND /usr/bin/python3 ${nb_tests}/plots_test.py)
add_test(NAME notebooks.clean COMMAND /usr/bin/python3 ${nb_tests}/clean_test.py)
add_test(NAME notebooks.regenerate COMMAND /usr/bin/python3 ${nb_tests}/regenerate_test.py)
add_test(NAME notebooks.runner COMMAND /usr/bin/python3 ${nb_tests}/runner_test.py)
set_tests_properties(notebooks.plots notebooks.clean notebooks.regenerate notebooks.runner
  PROPERTIES LABELS tools TIMEOUT 300)
# One test for all nine: make charts' own path, one notebook after another.
add_test(NAME notebooks.execute COMMAND /usr/bin/python3 ${nb_tests}/execute_test.py)
set_tests_properties(notebooks.execute PROPERTIES LABELS tools TIMEOUT 900)
