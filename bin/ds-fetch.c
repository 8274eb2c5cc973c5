/* ds-fetch — placeholder until issue #3 lands: it says so and exits 2,
 * whatever it is asked, so that no pipeline mistakes it for the real
 * program. */
#include "../lib/cli.h"

int main(void)
{
	cli_init("ds-fetch");
	cli_placeholder(3, "downloading datasets and models");
}
