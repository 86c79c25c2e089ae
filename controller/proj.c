/* proj.c — being written */
