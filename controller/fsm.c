/* fsm.c — being written */
