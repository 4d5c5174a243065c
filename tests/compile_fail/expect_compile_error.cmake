# Compiles SOURCE with -DMPROC_CASE=CASE and checks the outcome.
#   cmake -DCXX=<compiler> -DINCLUDE=<dir> -DSOURCE=<file> -DCASE=<n> [-DEXPECT=<text>] -P this
# Without EXPECT the source must compile; with it, compiling must fail and the compiler's output
# must contain EXPECT.
execute_process(
  COMMAND "${CXX}" -std=c++20 -fsyntax-only "-I${INCLUDE}" "-DMPROC_CASE=${CASE}" "${SOURCE}"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
if(NOT DEFINED EXPECT OR EXPECT STREQUAL "")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "case ${CASE} should compile but failed:\n${out}")
  endif()
  return()
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "case ${CASE} compiled, but must be rejected with: ${EXPECT}")
endif()
string(FIND "${out}" "${EXPECT}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "case ${CASE} failed to compile without the expected message\n"
                      "expected: ${EXPECT}\ncompiler output:\n${out}")
endif()
message(STATUS "case ${CASE} rejected as expected: ${EXPECT}")
