/* entry.c — being written */
