# cmake/EdgelmTests.cmake - the doctest suite and the CLI golden tests (included from the top
# CMakeLists.txt when EDGELM_BUILD_TESTS is ON).
#
# One test binary, edgelm_tests = tests/main.cpp (the only doctest main) + every tests/test_*.cpp,
# registered as two ctest entries (unit, unit_rest: halves of the files): a node start-up per doctest case would
# dominate the wasm run.
# Run a subset by hand with e.g. `build/native/edgelm_tests -tc="*gguf*"` or `-sf="*test_gguf*"`.
include_guard(GLOBAL)

file(GLOB EDGELM_TEST_SOURCES CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/test_*.cpp")
list(SORT EDGELM_TEST_SOURCES)
# EDGELM_X86_NO_SANITIZE (sanitize preset): the x86 kernels are uninstrumented in edgelm_tests, and
# tests/test_x86_paths.cpp becomes its own binary, edgelm_x86_tests, with them instrumented.
set(_edgelm_x86_test_source "${PROJECT_SOURCE_DIR}/tests/test_x86_paths.cpp")
if(EDGELM_X86_NO_SANITIZE AND EXISTS "${_edgelm_x86_test_source}")
  list(REMOVE_ITEM EDGELM_TEST_SOURCES "${_edgelm_x86_test_source}")
else()
  set(_edgelm_x86_test_source "")
endif()

if(NOT EDGELM_DOCTEST_FOUND)
  message(WARNING "edgelm: doctest/doctest.h not found (apt-get install doctest-dev): tests not built")
elseif(NOT EDGELM_TEST_SOURCES)
  message(STATUS "edgelm: no tests/test_*.cpp yet: edgelm_tests not built")
else()
  add_executable(edgelm_tests "${PROJECT_SOURCE_DIR}/tests/main.cpp" ${EDGELM_TEST_SOURCES})
  target_link_libraries(edgelm_tests PRIVATE edgelm::edgelm edgelm::highway edgelm::third_party_headers)
  if(TARGET edgelm::xsimd)
    target_link_libraries(edgelm_tests PRIVATE edgelm::xsimd)  # tests/test_xsimd.cpp (empty without it)
  endif()
  target_include_directories(edgelm_tests PRIVATE "${PROJECT_SOURCE_DIR}/tests")
  target_compile_definitions(edgelm_tests PRIVATE EDGELM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  set_target_properties(edgelm_tests PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}")
  edgelm_warnings(edgelm_tests)
  if(EMSCRIPTEN)
    # Without wasm exceptions every throw aborts (doctest's CHECK_THROWS, libc++). Colour codes
    # confuse anything that parses doctest's output under node.
    target_compile_options(edgelm_tests PRIVATE -fwasm-exceptions)
    target_link_options(edgelm_tests PRIVATE -fwasm-exceptions)
    target_compile_definitions(edgelm_tests PRIVATE DOCTEST_CONFIG_COLORS_NONE)
    edgelm_node_executable(edgelm_tests)
  endif()
  # ctest prepends CMAKE_CROSSCOMPILING_EMULATOR (node) for the wasm build.
  # Two ctest entries over halves of the source files, so that ctest -j 2 runs them side by side (the suite is
  # single-threaded and the slowest entry of the sanitize and wasm builds).
  set(_edgelm_unit_half "*test_a*,*test_b*,*test_c*,*test_f*,*test_g*,*test_h*,*test_sa*")
  add_test(NAME unit COMMAND edgelm_tests "--source-file=${_edgelm_unit_half}")
  add_test(NAME unit_rest COMMAND edgelm_tests "--source-file-exclude=${_edgelm_unit_half}")
  set_tests_properties(unit unit_rest PROPERTIES LABELS "unit" TIMEOUT 1800)
  if(_edgelm_x86_test_source)
    target_compile_definitions(edgelm_tests PRIVATE EDGELM_X86_NO_SANITIZE)
    add_executable(edgelm_x86_tests "${PROJECT_SOURCE_DIR}/tests/main.cpp" "${_edgelm_x86_test_source}")
    target_link_libraries(edgelm_x86_tests PRIVATE edgelm::edgelm edgelm::highway edgelm::third_party_headers)
    target_include_directories(edgelm_x86_tests PRIVATE "${PROJECT_SOURCE_DIR}/tests")
    target_compile_definitions(edgelm_x86_tests PRIVATE EDGELM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
    set_target_properties(edgelm_x86_tests PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}")
    edgelm_warnings(edgelm_x86_tests)
    add_test(NAME unit_x86 COMMAND edgelm_x86_tests)
    set_tests_properties(unit_x86 PROPERTIES LABELS "unit" TIMEOUT 1800)
  endif()
endif()

# CLI golden tests: text, logits, tokenizer and error bars against ../shared/models/golden.
if(TARGET edgelm_cli)
  set(_golden "${PROJECT_SOURCE_DIR}/tests/cli/golden.sh")
  if(EMSCRIPTEN)
    set(_cli_cmd ${CMAKE_CROSSCOMPILING_EMULATOR} "$<TARGET_FILE:edgelm_cli>")
  else()
    set(_cli_cmd "$<TARGET_FILE:edgelm_cli>")
  endif()
  add_test(NAME cli_golden COMMAND "${_golden}" ${_cli_cmd})
  add_test(NAME cli_template COMMAND "${PROJECT_SOURCE_DIR}/tests/cli/template.sh" ${_cli_cmd})
  set_tests_properties(cli_template PROPERTIES LABELS "cli" TIMEOUT 600)
  add_test(NAME cli_chat COMMAND "${PROJECT_SOURCE_DIR}/tests/cli/chat.sh" ${_cli_cmd})
  set_tests_properties(cli_chat PROPERTIES LABELS "cli" TIMEOUT 600)
  set_tests_properties(cli_golden PROPERTIES LABELS "cli" TIMEOUT 1200)
  if(EMSCRIPTEN AND NOT EDGELM_WASM_THREADS)
    # the single-thread wasm build runs -t 1 only (tools/test_all.sh checks the pthreads build with 1 and 2)
    set_tests_properties(cli_golden PROPERTIES ENVIRONMENT "EDGELM_GOLDEN_THREADS=1")
  endif()
endif()

# examples/engine-loop runs a few frames on stories260K.gguf (registered when the model is there).
set(EDGELM_SHARED_DIR "$ENV{EDGELM_SHARED_DIR}")
if(NOT EDGELM_SHARED_DIR)
  set(EDGELM_SHARED_DIR "${PROJECT_SOURCE_DIR}/../shared")
endif()
if(TARGET edgelm_engine_loop AND EXISTS "${EDGELM_SHARED_DIR}/models/stories260K.gguf")
  add_test(NAME engine_loop
           COMMAND edgelm_engine_loop "${EDGELM_SHARED_DIR}/models/stories260K.gguf" "Once upon a time" 30 2000)
  set_tests_properties(engine_loop PROPERTIES LABELS "examples" TIMEOUT 300)
endif()
