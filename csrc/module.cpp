// `import poolswap._C` loads this library, whose static initialisers register the poolswap ops with the
// dispatcher (TORCH_LIBRARY_*). The Python module itself is empty. torch must be imported first.
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "poolswap operators", -1, nullptr};
  return PyModule_Create(&module_def);
}
