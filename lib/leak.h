/* leak.h — does a guided chain of thought give away that it was handed the
 * answer?
 *
 * ds-teacher --guided shows the teacher the reference answer and asks for a
 * derivation that stands on its own. A student trained on a chain that says
 * "as given, the answer is 6" or "the reference says 6" learns to talk
 * about an answer key it will never see, so ds-judge rejects such chains.
 *
 * The test is by phrase, on words (case-insensitive, any white space,
 * Markdown emphasis between the words allowed, no other punctuation),
 * within one sentence. Phrases that ordinary mathematics uses too are
 * held to a context: "as given" counts only in a sentence that also says
 * "answer" ("given that x = 3" and "the sides, as given, are 3, 4, 5" do
 * not count), "the given answer" not when "choices" or "options" follow,
 * "the answer is given" not when "by" follows (a formula), "reference"
 * only as "the reference says/answer/solution", never "reference angle".
 * tests/unit/test_leak.c holds the cases on both sides.
 */
#ifndef DS_LEAK_H
#define DS_LEAK_H

#include <stddef.h>

/* The first place where text (borrowed; UTF-8, NUL-terminated) mentions
 * that its answer was given. Returns a short static reason such as
 * "mentions the given answer: 'as given'" (never freed; valid for the
 * life of the program), or NULL when there is none. Time is linear in
 * the text and memory constant, whatever its length. */
const char *leak_find(const char *text);

/* Every reason starts so; ds-sharegpt reads it in judge.reason to tell a
 * chain rejected for what it says from an answer that is wrong. */
#define LEAK_REASON_PREFIX "mentions the given answer: "

/* The same, for text[0..n) (need not be NUL-terminated); when a reason is
 * returned and at/len are not NULL, the words matched are text[*at ..
 * *at + *len), for quoting in a message. */
const char *leak_find_n(const char *text, size_t n, size_t *at, size_t *len);

#endif
