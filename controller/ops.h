/* ops.h — being written */
