/* ds-tokenize — placeholder until issue #6 lands: it says so and exits 2,
 * whatever it is asked, so that no pipeline mistakes it for the real
 * program. */
#include "../lib/cli.h"

int main(void)
{
	cli_init("ds-tokenize");
	cli_placeholder(6, "tokenization into token shards");
}
