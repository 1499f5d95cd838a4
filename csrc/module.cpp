// `import poolswap._C` loads this library, whose static initialisers register the poolswap ops with the
// dispatcher (TORCH_LIBRARY_*). The Python module itself is empty. torch must be imported first.
#include <Python.h>
#include <torch/library.h>

namespace {

// Whether the CPU kernels were compiled with OpenMP. at::parallel_for is an inline template: with torch's
// OpenMP backend its parallel region is compiled into this library, so without -fopenmp it runs serially.
bool compiled_with_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(poolswap, m) { m.def("_compiled_with_openmp() -> bool", &compiled_with_openmp); }

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "poolswap operators", -1, nullptr};
  return PyModule_Create(&module_def);
}
