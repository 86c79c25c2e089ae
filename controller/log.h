/* log.h — being written */
