/* ds-judge — placeholder until issue #5 lands: it says so and exits 2,
 * whatever it is asked, so that no pipeline mistakes it for the real
 * program. */
#include "../lib/cli.h"

int main(void)
{
	cli_init("ds-judge");
	cli_placeholder(5, "answer judging");
}
