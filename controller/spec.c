/* spec.c — being written */
