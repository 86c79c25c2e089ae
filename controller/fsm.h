/* fsm.h — being written */
