/* ops.c — being written */
