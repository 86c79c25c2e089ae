/* api.h — being written */
