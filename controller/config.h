/* config.h — being written */
