/* loop.c — being written */
