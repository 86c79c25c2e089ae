/* latticectl — the command line of a lattice (docs/latticectl.md). Everything
 * is in ctl_cmd.c and the modules it names; this only hands argv over. */
#include "ctl_cmd.h"

int main(int argc, char **argv)
{
	return ctl_main(argc - 1, argv + 1);
}
