/* sched.c — being written */
