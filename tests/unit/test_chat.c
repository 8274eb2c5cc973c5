/* lib/chat: the deepseekr1 template's inference prompt against golden ids
 * from LLaMA-Factory 0.9.5 (tests/oracle/lf_prompt.py, template deepseekr1,
 * on the R1-Distill test tokenizer that tests/t-tokenize.sh builds), the
 * template a tokenizer is guessed to want, and the tokens a template needs.
 * Its training layout is compared with LLaMA-Factory's own preprocessing
 * in tests/t-llamafactory.sh. */
#include "../../lib/chat.h"
#include "../../lib/cli.h"
#include "../../lib/zstdio.h"
#include "testhelp.h"

#include <jv.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* DeepSeek-R1-Distill-Qwen's tokenizer: Qwen's vocabulary and merges with
 * R1's added tokens (tests/data/r1distill/tokenizer.patch.json), written
 * to a temporary file for tokenizer_load. Returns owned, or NULL. */
static tokenizer *r1_tokenizer(void)
{
	char *err = NULL, path[] = "/tmp/ds-test-chat.XXXXXX";
	size_t n;
	char *qwen = zreader_slurp("tests/data/qwen/tokenizer.json.zst", &n, &err);
	char *patch = cli_read_file("tests/data/r1distill/tokenizer.patch.json");
	tokenizer *t = NULL;
	int fd = -1;
	if (!qwen || !patch) goto out;
	jv j = jv_object_merge(jv_parse_sized(qwen, (int)n), jv_parse(patch));
	jv s = jv_dump_string(j, 0);
	const char *text = jv_string_value(s);
	size_t len = strlen(text);
	fd = mkstemp(path);
	if (fd >= 0 && write(fd, text, len) == (ssize_t)len) t = tokenizer_load(path, &err);
	jv_free(s);
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	if (err) printf("     | %s\n", err);
	free(err);
	free(qwen);
	free(patch);
	return t;
}

static int ids_equal(const tokenizer_ids *o, const uint32_t *want, size_t n)
{
	return o->n == n && memcmp(o->ids, want, n * sizeof *want) == 0;
}

int main(void)
{
	char *err = NULL, why[256];
	tokenizer *qwen = tokenizer_load("tests/data/qwen/tokenizer.json.zst", &err);
	tokenizer *r1 = r1_tokenizer();
	EXPECT(qwen && r1, "Qwen's tokenizer and the R1-Distill one made from it load");
	if (!qwen || !r1) TEST_END();

	const chat_template *ds = chat_template_find("deepseekr1");
	EXPECT(ds && chat_template_find("r1-distill") == ds && !chat_template_find("deepseek"),
	       "deepseekr1 is found by its name and its alias, nothing else");
	EXPECT(chat_template_guess(r1) == ds, "R1-Distill's added tokens: deepseekr1 guessed");
	EXPECT(chat_template_guess(qwen) == chat_template_find("qwen"), "Qwen's ChatML tokens: qwen guessed");
	EXPECT(!chat_template_check(ds, r1, why, sizeof why) &&
		       !chat_template_check(chat_template_find("qwen"), qwen, why, sizeof why),
	       "each template has its tokens in its own tokenizer");
	const char *bad = chat_template_check(ds, qwen, why, sizeof why);
	EXPECT(bad && strstr(bad, "template deepseekr1: \"<\uff5cbegin\u2581of\u2581sentence\uff5c>\" is not one token"),
	       "deepseekr1 on Qwen's tokenizer: its BOS is named as missing");
	bad = chat_template_check(chat_template_find("qwen"), r1, why, sizeof why);
	EXPECT(bad && strstr(bad, "\"<|im_start|>\""), "qwen on R1-Distill's tokenizer: <|im_start|> missing");

	/* Prompts end with a user turn; LF drops every thought in them and
	 * strips the newlines that lead an assistant turn it took one from. */
	static const struct {
		const char *what, *system, *turns[3];
		int n;
		uint32_t ids[24];
		size_t n_ids;
	} golden[] = {
		{"one user turn: BOS, <｜User｜>, the text, <｜Assistant｜>", NULL, {"What is 1+1?"}, 1,
		 {151646, 151644, 3838, 374, 220, 16, 10, 16, 30, 151645}, 10},
		{"system prompt bare after BOS; the history's thought dropped", "Be brief.",
		 {"1+1?", "<think>\nadd them\n</think>\n\n2", "And 2+2?"}, 3,
		 {151646, 3430, 9814, 13, 151644, 16, 10, 16, 30, 151645, 17, 151643, 151644, 3036, 220,
		  17, 10, 17, 30, 151645}, 20},
		{"a history turn without a thought: no empty thought, leading newline gone", NULL,
		 {"Hi", "\nHello!", "Bye"}, 3,
		 {151646, 151644, 13048, 151645, 9707, 0, 151643, 151644, 1359, 68, 151645}, 11},
	};
	chat_encoder e = {.tok = r1, .tpl = ds};
	chat_conv c = {0};
	for (size_t i = 0; i < sizeof golden / sizeof *golden; i++) {
		c.n = 0;
		c.system = (chat_turn){NULL, 0};
		for (int k = 0; k < golden[i].n; k++) chat_conv_add(&c, golden[i].turns[k], strlen(golden[i].turns[k]));
		chat_encode(&e, &c, golden[i].system);
		EXPECT(ids_equal(&e.ids, golden[i].ids, golden[i].n_ids), golden[i].what);
	}

	/* The same history in training keeps the thought, and a reply without
	 * one gets the empty thought, trained (inside the reply's slot). */
	c.n = 0;
	chat_conv_add(&c, "Hi", 2);
	chat_conv_add(&c, "Hello!", 6);
	chat_encode(&e, &c, NULL);
	static const uint32_t train[] = {151646, 151644, 13048, 151645, 151648, 271, 151649, 271, 9707, 0, 151643};
	EXPECT(ids_equal(&e.ids, train, sizeof train / sizeof *train) && e.msg_end[0] == 4 && e.msg_end[1] == 11,
	       "training: the empty thought opens the reply's slot, EOS closes it");

	chat_conv_free(&c);
	chat_encoder_free(&e);
	tokenizer_free(qwen);
	tokenizer_free(r1);
	TEST_END();
}
