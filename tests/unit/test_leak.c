/* leak: chains that reveal they were handed the answer are found, with the
 * right words quoted; ordinary mathematics is not. The negative cases are
 * sentences of the kind DeepSeek-R1 writes when it was given nothing. */
#include "../../lib/leak.h"
#include "testhelp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each leak, with the words that must be quoted. */
static const char *const leaks[][2] = {
	{"So the answer is 6, as given.", "as given"},
	{"This matches the given answer of 6.", "given answer"},
	{"The reference says the answer is 6.", "reference says"},
	{"We are told the answer is 6, so let us derive it.", "told the answer is"},
	{"The provided answer is 6, which we now justify.", "provided answer"},
	{"The expected answer is 6.", "expected answer"},
	{"Since the given final answer is 6, the area must be 6.", "given final answer"},
	{"The user says the correct answer is 6.", "user says the correct answer is"},
	{"The problem states that the answer is 6.", "problem states that the answer is"},
	{"Hmm, the answer is given as 6, so x must be 3.", "answer is given"},
	{"Given that the answer is 6, let me check the steps.", "Given that the answer is"},
	{"Let me work backwards from the answer.", "backwards from the answer"},
	{"The reference answer is \\boxed{6}.", "reference answer"},
	{"According to the reference, x = 3.", "According to the reference"},
	{"The answer key says 6.", "answer key"},
	{"But the answer is supposed to be 6, so I made an error.", "answer is supposed to"},
	{"We were given the answer, so we only need the steps.", "given the answer"},
	{"Knowing the answer is 6 makes this easier.", "Knowing the answer"},
	{"I already know the answer, but let me derive it.", "already know the answer"},
	{"THE GIVEN ANSWER IS 6.", "GIVEN ANSWER"},
	{"the given\nanswer is 6", NULL}, /* a line break ends the sentence... */
	{"the given\t  answer is 6", "given\t  answer"}, /* ...other white space does not */
	{"The answer provided is 6.", "answer provided is"},
	{"Hmm, the answer we were told is 6.", "answer we were told"},
	{"The answer we\xe2\x80\x99re given is 6.", "answer we\xe2\x80\x99re given"},
	{"The target answer is 6.", "target answer"},
	{"The hint says the answer is 12.", "hint says the answer is"},
	{"The prompt gives the answer as 12.", "prompt gives the answer"},
	{"The answer (as given) is 6.", "as given"},
	{"As given, the area is 6, and that is the answer.", "As given"},
	{"The **given** answer is 6.", "given** answer"},
	{"Since we know the correct answer is 6, we check.", "know the correct answer"},
	{"The answer was provided to us: 6.", "answer was provided"},
	{"The official answer is 7.", "official answer"},
	{"Per the problem, the answer given in the prompt is 7.", "answer given in the prompt"},
};

static const char *const clean[] = {
	"Given that x = 3, we find y = 9.",
	"As given in the problem, the triangle has sides 3, 4 and 5.",
	"The sides are as given above, so the area is 6.",
	"The given equation has two real roots.",
	"So the final answer is \\boxed{6}.",
	"The expected value of the die is 3.5.",
	"The reference angle is 30 degrees.",
	"In the frame of reference of the train, the ball is at rest.",
	"The answer is given by the formula n(n+1)/2.",
	"Check the given answer choices: (A) 2, (B) 3.",
	"We know that the area is 12.",
	"The user wants the answer in a box.",
	"The problem says to put the answer in \\boxed{}.",
	"Let me verify the answer by substitution.",
	"The provided function f is continuous on [0, 1].",
	"Provided that n > 2, the answer is 5.",
	"The solution provided by Newton's method converges.",
	"We are told that the train travels at 60 km/h.",
	"Given the answer to part (a), part (b) follows.",
	"As expected, the series converges, so the answer is 2.",
	"The question gives the values a = 2 and b = 3.",
	"The expected output for the sample input is 6.",
	"The problem says the answer is a positive integer.",
	"We must show that the answer is an integer.",
	"Knowing the area, we can find the side.",
	"The answer, given the constraints, is 6.",
	"The problem, as given, is well posed.",
	"Given the answer choices, (C) is the only even one.",
	"The answer, as given by the formula above, is 10.",
	"The given answer choices are 1, 2, 3.",
	"Given that the answer must be an integer, x = 4.",
	"Is the answer 6? As given in the problem, a = 2; and 2 * 3 = 6.",
	"The answer is 6. As given, b = 3.",
	"",
	"answer",
	"as given",
};

/* A sentence with the phrase a long way after its start, and a long one
 * without: the window slides, the sentence flag lasts. */
static int long_sentence(int with_answer)
{
	size_t n = 200000;
	char *t = malloc(n + 64), *p = t;
	p += sprintf(p, "As given ");
	while ((size_t)(p - t) < n) p += sprintf(p, "and x ");
	sprintf(p, "%s.", with_answer ? "so the answer is 6" : "so y is 6");
	const char *r = leak_find(t);
	free(t);
	return r != NULL;
}

int main(void)
{
	char what[256];
	int n_pos = 0, n_neg = 0;
	for (size_t i = 0; i < sizeof leaks / sizeof leaks[0]; i++) {
		const char *text = leaks[i][0], *want = leaks[i][1];
		size_t at = 0, len = 0;
		const char *r = leak_find_n(text, strlen(text), &at, &len);
		snprintf(what, sizeof what, "leak found: %.60s", text);
		if (!want) {
			snprintf(what, sizeof what, "a line break ends the phrase (case %zu)", i);
			EXPECT(!r, what);
			continue;
		}
		n_pos++;
		EXPECT(r && !strncmp(r, LEAK_REASON_PREFIX "'", strlen(LEAK_REASON_PREFIX) + 1), what);
		snprintf(what, sizeof what, "quotes \"%.40s\"", want);
		EXPECT(r && len == strlen(want) && !memcmp(text + at, want, len), what);
		EXPECT(!r || leak_find(text) == r, "leak_find agrees with leak_find_n");
	}
	for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++) {
		const char *r = leak_find(clean[i]);
		snprintf(what, sizeof what, "no leak: %.60s%s%s", clean[i], r ? " -> " : "", r ? r : "");
		EXPECT(!r, what);
		n_neg++;
	}
	EXPECT(n_pos >= 20 && n_neg >= 20, "at least 20 cases each way");
	EXPECT(!strcmp(leak_find("So the answer is 6, as given.") ? leak_find("So the answer is 6, as given.") : "",
		       "mentions the given answer: 'as given'"),
	       "the reason names the phrase");
	EXPECT(long_sentence(1), "\"as given\" 33k words before \"answer\" in one sentence is found");
	EXPECT(!long_sentence(0), "a 200 kB sentence with \"as given\" and no \"answer\" is clean");
	/* Within n only: the text after it is not read. */
	const char *t = "The answer is 6. The given answer is 6.";
	EXPECT(!leak_find_n(t, 16, NULL, NULL) && leak_find_n(t, strlen(t), NULL, NULL),
	       "leak_find_n reads only n bytes");
	TEST_END();
}
