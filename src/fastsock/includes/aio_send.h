/* The am_send slot of fastsock.aio's compiled read awaitable (AioRead).

   Why: an await of an object with am_send takes its result from the slot
   directly (CPython 3.10 and 3.11 in the await itself; every version when a
   task steps the object), where __next__ must raise StopIteration to return
   a value.  Cython has no syntax for the slot, so the module sets it at
   import to this function, which calls the awaitable's step: a new reference
   (yielded or returned, as *yielded says) or NULL with the error set. */
#ifndef FASTSOCK_AIO_SEND_H
#define FASTSOCK_AIO_SEND_H

#include <Python.h>

typedef PyObject *(*fastsock_aio_step_fn)(PyObject *awaitable, int *yielded);

static fastsock_aio_step_fn fastsock_aio_step = NULL;

static PySendResult
fastsock_aio_am_send(PyObject *awaitable, PyObject *Py_UNUSED(value), PyObject **result)
{
    int yielded = 0;
    *result = fastsock_aio_step(awaitable, &yielded);
    if (*result == NULL)
        return PYGEN_ERROR;
    return yielded ? PYGEN_NEXT : PYGEN_RETURN;
}

/* the slot of a type whose tp_as_async Cython made (it has __await__) */
static int
fastsock_aio_set_am_send(PyTypeObject *type, fastsock_aio_step_fn step)
{
    if (type->tp_as_async == NULL) {
        PyErr_SetString(PyExc_SystemError, "AioRead has no async slots");
        return -1;
    }
    fastsock_aio_step = step;
    type->tp_as_async->am_send = fastsock_aio_am_send;
    return 0;
}

#endif
