/* ds-train — placeholder until issue #7 lands: it says so and exits 2,
 * whatever it is asked, so that no pipeline mistakes it for the real
 * program. */
#include "../lib/cli.h"

int main(void)
{
	cli_init("ds-train");
	cli_placeholder(7, "training");
}
