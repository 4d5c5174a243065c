# Compiles SOURCE with -DMPROC_CASE=CASE and checks the outcome.
#   cmake -DCXX=<compiler> -DINCLUDE=<dir> -DSOURCE=<file> -DCASE=<n> [-DEXPECT=<text>]
#         [-DEXPECT_ALSO=<text>] [-DMAX_ERRORS=<n>] -P this
# Without EXPECT the source must compile; with it, compiling must fail and the compiler's output
# must contain EXPECT (and EXPECT_ALSO, if given). With MAX_ERRORS, the output may hold at most
# that many errors, and the expected texts must appear in the first one: from the start of the
# output (the instantiation context that leads to it) to the line before the second error (the
# notes that follow it included), so that the message a reader sees first is the one checked.
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
# The output with ';' (CMake's list separator, frequent in "[with T = ...; U = ...]") replaced,
# position for position, so that it can be cut into a list of lines.
string(REPLACE ";" "," flat "${out}")
set(where "${flat}")
if(DEFINED MAX_ERRORS AND NOT MAX_ERRORS STREQUAL "")
  # Error lines of GCC and Clang: "<file>:<line>:<col>: error: ..." (also "fatal error:").
  string(REGEX MATCHALL "[^\n]*error: [^\n]*" errors "${flat}")
  list(LENGTH errors n_errors)
  if(n_errors GREATER MAX_ERRORS)
    message(FATAL_ERROR "case ${CASE}: ${n_errors} errors, at most ${MAX_ERRORS} expected\n"
                        "compiler output:\n${out}")
  endif()
  if(n_errors GREATER 1)
    # The second error starts after the first one's line (their texts may be the same).
    list(GET errors 0 first)
    list(GET errors 1 second)
    string(FIND "${flat}" "${first}" first_at)
    string(LENGTH "${first}" first_len)
    math(EXPR after "${first_at} + ${first_len}")
    string(SUBSTRING "${flat}" ${after} -1 rest)
    string(FIND "${rest}" "${second}" cut)
    math(EXPR cut "${after} + ${cut}")
    string(SUBSTRING "${flat}" 0 ${cut} where)
  endif()
endif()
foreach(text IN ITEMS "${EXPECT}" "${EXPECT_ALSO}")
  if(text STREQUAL "")
    continue()
  endif()
  string(FIND "${where}" "${text}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "case ${CASE} failed to compile without the expected message"
                        " (in its first error, when MAX_ERRORS is given)\n"
                        "expected: ${text}\ncompiler output:\n${out}")
  endif()
endforeach()
string(REGEX MATCHALL "\n" lines "${out}")
list(LENGTH lines n_lines)
message(STATUS "case ${CASE} rejected as expected (${n_lines} lines of output): ${EXPECT}")
