/* http.h — being written */
