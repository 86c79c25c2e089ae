/* query.h — being written */
