/* api.c — being written */
