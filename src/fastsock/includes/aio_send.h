/* Two C shortcuts of fastsock.aio's compiled core: the am_send slot of its
   read awaitable (AioRead), and done() of asyncio's C Future (below).

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

/* fut.done() for asyncio's C Future by its C function, found once: a read's
   wait asks up to three times, and a call through the method's descriptor
   costs as much as the rest of the check.  1, 0, or -1 with the error set. */
typedef PyObject *(*fastsock_noargs_fn)(PyObject *self, PyObject *unused);

static PyObject *fastsock_future_type = NULL;
static fastsock_noargs_fn fastsock_future_done = NULL;

static int
fastsock_aio_learn_future(PyObject *future_type)
{
    PyObject *descr = PyObject_GetAttrString(future_type, "done");
    if (descr == NULL)
        return -1;
    if (Py_IS_TYPE(descr, &PyMethodDescr_Type)) {
        PyMethodDef *method = ((PyMethodDescrObject *)descr)->d_method;
        if ((method->ml_flags & ~METH_COEXIST) == METH_NOARGS) {
            Py_INCREF(future_type);
            fastsock_future_type = future_type;
            fastsock_future_done = (fastsock_noargs_fn)(void (*)(void))method->ml_meth;
        }
    }
    Py_DECREF(descr);
    return 0;
}

static int
fastsock_aio_done(PyObject *fut)
{
    PyObject *result;
    int done;
    if (fastsock_future_done != NULL && (PyObject *)Py_TYPE(fut) == fastsock_future_type)
        result = fastsock_future_done(fut, NULL);
    else
        result = PyObject_CallMethod(fut, "done", NULL);
    if (result == NULL)
        return -1;
    done = PyObject_IsTrue(result);
    Py_DECREF(result);
    return done;
}

#endif
