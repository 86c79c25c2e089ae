/* policy.c — being written */
