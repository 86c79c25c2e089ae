/* otree.c — being written */
