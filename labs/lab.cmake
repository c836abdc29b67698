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
#   iolab_lab_program(<name> SOURCES <file>... [REFERENCE <dir>] [SHARED <file>...]
#                     [MODEL <model>] [LIBS <lib>...] [DEFINITIONS <d>...])
#
#   SOURCES      the files the student writes, by name: exercise/<file> and solution/<file>.
#                With REFERENCE, a file missing from solution/ is taken from <dir> (relative to
#                the project root): the real server's own file is the reference solution.
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
# function in a file of its own (servers/core/send_file.cpp): the linker takes the student's
# definition and never pulls the library's member that holds the other one.
#
# The exercise variant is compiled without -Werror: a half-finished starter that warns (an
# unused parameter while the reader works) must not break `make build` for everything else.
# Program names are global across labs (they share the two bin folders), so a second lab using
# the same name is a configure error.
include_guard(GLOBAL)
# labs/common/ (headers shared by several labs, e.g. lab_loop.hpp) is on every lab's include path.
set(IOLAB_LABS_COMMON ${CMAKE_CURRENT_LIST_DIR}/common)

function(iolab_lab_program name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "MODEL;REFERENCE" "SOURCES;SHARED;LIBS;DEFINITIONS")
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
  # Known wrong solutions: each folder wrong/<fixture>/ is one more variant, wrong-<fixture>,
  # holding only the file(s) it gets wrong; the others come from the solution.
  set(variants exercise solution)
  file(GLOB wrong_dirs LIST_DIRECTORIES true ${CMAKE_CURRENT_SOURCE_DIR}/wrong/*)
  foreach(wrong_dir ${wrong_dirs})
    if(IS_DIRECTORY ${wrong_dir})
      get_filename_component(fixture ${wrong_dir} NAME)
      list(APPEND variants wrong-${fixture})
    endif()
  endforeach()
  foreach(variant ${variants})
    set(sources "")
    set(dirs ${CMAKE_CURRENT_SOURCE_DIR}/${variant})
    set(fallback ${variant})
    if(variant MATCHES "^wrong-(.+)$")
      set(dirs ${CMAKE_CURRENT_SOURCE_DIR}/wrong/${CMAKE_MATCH_1})
      set(fallback solution)
    endif()
    foreach(file ${arg_SOURCES})
      list(GET dirs 0 own_dir)
      set(path ${own_dir}/${file})
      if(NOT EXISTS ${path} AND NOT fallback STREQUAL variant)
        set(path ${CMAKE_CURRENT_SOURCE_DIR}/solution/${file})
        list(APPEND dirs ${CMAKE_CURRENT_SOURCE_DIR}/solution)
      endif()
      if(fallback STREQUAL "solution" AND NOT EXISTS ${path} AND arg_REFERENCE)
        set(path ${PROJECT_SOURCE_DIR}/${arg_REFERENCE}/${file})
        list(APPEND dirs ${PROJECT_SOURCE_DIR}/${arg_REFERENCE})
      endif()
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
