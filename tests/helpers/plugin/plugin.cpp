// A small shared library for the tests of code addresses that travel (code_ref_test,
// code_ref_image_test). Built several times from this source (tests/CMakeLists.txt):
// MPROC_TEST_PLUGIN_VARIANT changes the code, and so the build-id, of each build.
#ifndef MPROC_TEST_PLUGIN_VARIANT
#error "build with -DMPROC_TEST_PLUGIN_VARIANT=<number>"
#endif

extern "C" __attribute__((visibility("default"))) int mproc_test_plugin_value(int x) {
  return x * 7 + MPROC_TEST_PLUGIN_VARIANT;
}
