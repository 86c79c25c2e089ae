/* metrics.h — being written */
