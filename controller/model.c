/* model.c — being written */
