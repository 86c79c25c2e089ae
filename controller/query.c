/* query.c — being written */
