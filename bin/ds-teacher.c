/* ds-teacher — placeholder until issue #4 lands: it says so and exits 2,
 * whatever it is asked, so that no pipeline mistakes it for the real
 * program. */
#include "../lib/cli.h"

int main(void)
{
	cli_init("ds-teacher");
	cli_placeholder(4, "teacher generation");
}
