/* ds-infer — placeholder until issue #8 lands: it says so and exits 2,
 * whatever it is asked, so that no pipeline mistakes it for the real
 * program. */
#include "../lib/cli.h"

int main(void)
{
	cli_init("ds-infer");
	cli_placeholder(8, "inference");
}
