# CPython C-API functions that Cython's bundled cpython.* does not declare
# the way fastsock calls them.

from cpython.object cimport PyObject, PyTypeObject

cdef extern from "Python.h":
    # returns a new reference the caller may resize before it is shared
    PyObject *PyBytes_FromStringAndSize_ptr "PyBytes_FromStringAndSize" (
        const char *v, Py_ssize_t size) except NULL
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t newsize) except -1
    object PyUnicode_DecodeFSDefaultAndSize(const char *s, Py_ssize_t size)
    # allocates an instance of a tuple subclass without an intermediate tuple
    object PyType_GenericAlloc(PyTypeObject *type, Py_ssize_t nitems)
