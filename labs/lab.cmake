# The one CMake include every lab uses, so a lab's own CMakeLists.txt is a few lines.
#
# A lab builds the real sources (from servers/, or a harness in the lab folder) and swaps in only
# what the student writes. exercise/ holds the starter of those files, solution/ the reference;
# iolab_lab_program() builds one program from each, under the same name, into two folders, so a
# check can run either by swapping a path:
#
#   ${CMAKE_BINARY_DIR}/labs/bin/exercise/<name>
#   ${CMAKE_BINARY_DIR}/labs/bin/solution/<name>
#
#   iolab_lab_program(<name> SOURCES <file>... [REFERENCE <dir>...] [SHARED <file>...]
#                     [MODEL <model>] [LIBS <lib>...] [DEFINITIONS <d>...])
#
#   SOURCES      the files the student writes, by name: exercise/<file> and solution/<file>.
#                With REFERENCE, a file missing from solution/ comes from the first <dir> holding
#                it (from the project root): the real server's own file is the reference solution.
#   SHARED       the rest of the program, the same in both variants: paths relative to the lab
#                folder, or ${PROJECT_SOURCE_DIR}/servers/... for a real server's files (their
#                folders join the include path, after the variant's own folder).
#   MODEL m      a server on the shared core, built like add_server(): IOLAB_MODEL="m" and linked
#                with iolab_core, the allocation counter and threads. Name the program
#                server_<m> so its ready line and Server header match what the conformance suite
#                expects ("server_<m> listening on ...", "Server: iolab-<m>").
#   LIBS         more libraries to link (benchmark::benchmark, iolab_core, ...)
#   DEFINITIONS  more compile definitions
#
# A student file may replace a function that iolab_core also defines, when the core keeps that
# function in a file of its own (servers/core/os/send_file.cpp): the linker takes the student's
# definition and never pulls the library's member that holds the other one.
#
# The exercise variant is compiled without -Werror: a half-finished starter that warns (an
# unused parameter while the reader works) must not break `make build` for everything else.
# Program names are global across labs (they share the two bin folders), so a second lab using
# the same name is a configure error.
include_guard(GLOBAL)
# labs/common/ (headers shared by several labs, e.g. lab_loop.hpp) is on every lab's include path.
set(IOLAB_LABS_COMMON ${CMAKE_CURRENT_LIST_DIR}/common)
find_program(IOLAB_GIT git REQUIRED)

# Known wrong solutions (a hole the check once had): each labs/NN-topic/wrong/<fixture>.patch is
# a unified diff against the reference file (solution/<file>, or the REFERENCE server's file),
# its paths relative to the project root, as in tests/conformance/mutants/. At configure time the
# patch is applied (`git apply`, outside any repository) to a copy of that file, and the result
# is written to
#
#   ${CMAKE_BINARY_DIR}/labs/NN-topic/wrong/<fixture>/<file>
#
# the sources of variant wrong-<fixture> (labs/common/checklib.py's variant_dir() finds it
# there). A change to the patch or to the reference file re-runs the configure step; a patch
# that no longer applies is a configure error. Sets <fixtures_var> to the fixtures' names, in
# order; the work is done once per lab, whoever asks first (labs/CMakeLists.txt, or
# iolab_lab_program()).
function(iolab_lab_wrong_fixtures lab_dir fixtures_var)
  get_filename_component(lab_folder ${lab_dir} NAME)
  get_property(done GLOBAL PROPERTY IOLAB_WRONG_DONE_${lab_folder} SET)
  if(done)
    get_property(fixtures GLOBAL PROPERTY IOLAB_WRONG_DONE_${lab_folder})
    set(${fixtures_var} ${fixtures} PARENT_SCOPE)
    return()
  endif()
  set(fixtures "")
  set(out_root ${CMAKE_BINARY_DIR}/labs/${lab_folder})
  file(GLOB patches CONFIGURE_DEPENDS ${lab_dir}/wrong/*.patch)
  list(SORT patches)
  foreach(patch ${patches})
    get_filename_component(fixture ${patch} NAME_WLE)
    file(STRINGS ${patch} targets REGEX "^\\+\\+\\+ ")
    list(LENGTH targets count)
    if(NOT count EQUAL 1 OR NOT targets MATCHES "^\\+\\+\\+ b/(.+)$")
      message(FATAL_ERROR "${patch}: a wrong fixture patches exactly one file (a line "
                          "`+++ b/<path from the project root>`), found: ${targets}")
    endif()
    set(relative ${CMAKE_MATCH_1})
    set(reference ${PROJECT_SOURCE_DIR}/${relative})
    if(NOT EXISTS ${reference})
      message(FATAL_ERROR "${patch}: the file it patches, ${relative}, is missing")
    endif()
    set_property(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} APPEND PROPERTY
      CMAKE_CONFIGURE_DEPENDS ${patch} ${reference})
    # Apply in a scratch folder that git cannot take for part of a repository (the build tree
    # may sit inside the project's work tree): GIT_CEILING_DIRECTORIES stops the search there.
    set(stage ${out_root}/wrong-stage/${fixture})
    file(REMOVE_RECURSE ${stage})
    get_filename_component(relative_dir ${relative} DIRECTORY)
    file(COPY ${reference} DESTINATION ${stage}/${relative_dir})
    execute_process(
      COMMAND ${CMAKE_COMMAND} -E env --unset=GIT_DIR --unset=GIT_WORK_TREE
              GIT_CEILING_DIRECTORIES=${out_root}/wrong-stage
              ${IOLAB_GIT} apply --whitespace=nowarn ${patch}
      WORKING_DIRECTORY ${stage}
      RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT status EQUAL 0)
      message(FATAL_ERROR "${patch} no longer applies to ${relative}: remake it against the "
                          "reference (labs/README.md, wrong fixtures):\n${out}")
    endif()
    get_filename_component(file ${relative} NAME)
    file(MAKE_DIRECTORY ${out_root}/wrong/${fixture})
    # Only when it changed, so an unchanged fixture is not rebuilt at each configure.
    file(COPY_FILE ${stage}/${relative} ${out_root}/wrong/${fixture}/${file} ONLY_IF_DIFFERENT)
    list(APPEND fixtures ${fixture})
  endforeach()
  file(REMOVE_RECURSE ${out_root}/wrong-stage)
  set_property(GLOBAL PROPERTY IOLAB_WRONG_DONE_${lab_folder} ${fixtures})
  set(${fixtures_var} ${fixtures} PARENT_SCOPE)
endfunction()

function(iolab_lab_program name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "MODEL" "SOURCES;SHARED;LIBS;DEFINITIONS;REFERENCE")
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "iolab_lab_program(${name}): SOURCES is required")
  endif()
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "iolab_lab_program(${name}): unknown arguments ${arg_UNPARSED_ARGUMENTS}")
  endif()
  get_property(taken GLOBAL PROPERTY IOLAB_LAB_PROGRAMS)
  if(name IN_LIST taken)
    message(FATAL_ERROR "iolab_lab_program(${name}): another lab already builds a program of this "
                        "name (labs/bin/<variant>/ is shared); pick another name")
  endif()
  set_property(GLOBAL APPEND PROPERTY IOLAB_LAB_PROGRAMS ${name})

  set(shared "")
  set(shared_dirs "")
  foreach(file ${arg_SHARED})
    get_filename_component(path ${file} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    if(NOT EXISTS ${path})
      message(FATAL_ERROR "iolab_lab_program(${name}): ${path} is missing")
    endif()
    get_filename_component(dir ${path} DIRECTORY)
    list(APPEND shared ${path})
    list(APPEND shared_dirs ${dir})
  endforeach()
  list(REMOVE_DUPLICATES shared_dirs)

  get_filename_component(lab_folder ${CMAKE_CURRENT_SOURCE_DIR} NAME)
  string(SUBSTRING ${lab_folder} 0 2 lab_number)
  # Known wrong solutions: each wrong/<fixture>.patch is one more variant, wrong-<fixture>,
  # whose folder (materialised in the build tree, above) holds only the file it gets wrong; the
  # others come from the solution.
  set(variants exercise solution)
  iolab_lab_wrong_fixtures(${CMAKE_CURRENT_SOURCE_DIR} fixtures)
  foreach(fixture ${fixtures})
    list(APPEND variants wrong-${fixture})
  endforeach()
  foreach(variant ${variants})
    set(sources "")
    set(dirs ${CMAKE_CURRENT_SOURCE_DIR}/${variant})
    set(fallback ${variant})
    if(variant MATCHES "^wrong-(.+)$")
      set(dirs ${CMAKE_BINARY_DIR}/labs/${lab_folder}/wrong/${CMAKE_MATCH_1})
      set(fallback solution)
    endif()
    foreach(file ${arg_SOURCES})
      list(GET dirs 0 own_dir)
      set(path ${own_dir}/${file})
      if(NOT EXISTS ${path} AND NOT fallback STREQUAL variant)
        set(path ${CMAKE_CURRENT_SOURCE_DIR}/solution/${file})
        list(APPEND dirs ${CMAKE_CURRENT_SOURCE_DIR}/solution)
      endif()
      foreach(reference ${arg_REFERENCE})
        if(fallback STREQUAL "solution" AND NOT EXISTS ${path}
           AND EXISTS ${PROJECT_SOURCE_DIR}/${reference}/${file})
          set(path ${PROJECT_SOURCE_DIR}/${reference}/${file})
          list(APPEND dirs ${PROJECT_SOURCE_DIR}/${reference})
        endif()
      endforeach()
      if(NOT EXISTS ${path})
        message(FATAL_ERROR "iolab_lab_program(${name}): ${path} is missing")
      endif()
      if(NOT file MATCHES "\\.(h|hpp)$")
        list(APPEND sources ${path})
      endif()
    endforeach()
    set(target lab${lab_number}_${variant}_${name})
    add_executable(${target} ${sources} ${shared})
    set_target_properties(${target} PROPERTIES
      OUTPUT_NAME ${name}
      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/labs/bin/${variant})
    target_include_directories(${target} PRIVATE
      ${dirs} ${CMAKE_CURRENT_SOURCE_DIR} ${shared_dirs} ${IOLAB_LABS_COMMON})
    if(arg_MODEL)
      target_link_libraries(${target} PRIVATE iolab_core iolab_alloc_counter Threads::Threads)
      target_compile_definitions(${target} PRIVATE IOLAB_MODEL="${arg_MODEL}")
    endif()
    if(arg_LIBS)
      target_link_libraries(${target} PRIVATE ${arg_LIBS})
    endif()
    if(arg_DEFINITIONS)
      target_compile_definitions(${target} PRIVATE ${arg_DEFINITIONS})
    endif()
    if(NOT variant STREQUAL "solution")
      target_compile_options(${target} PRIVATE -Wno-error)
    endif()
    # `cmake --build build --target labNN` builds one lab's programs.
    if(NOT TARGET lab${lab_number})
      add_custom_target(lab${lab_number})
    endif()
    add_dependencies(lab${lab_number} ${target})
  endforeach()
endfunction()
