/* loop.h — being written */
