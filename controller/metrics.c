/* metrics.c — being written */
