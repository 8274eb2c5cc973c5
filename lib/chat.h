/* chat.h — conversations through a chat template into token ids, the one
 * way ds-tokenize (training) and ds-infer (generation) both do it, so the
 * student sees at inference exactly the token layout it was trained on.
 *
 * The `qwen` template is LLaMA-Factory 0.9.5's (data/template.py): ChatML,
 * no BOS, Qwen2.5's default system prompt. Like LLaMA-Factory, each slot
 * (the system prompt, a user turn with the assistant header after it, an
 * assistant turn) is formatted and encoded on its own
 * (_convert_elements_to_ids), so an assistant turn never merges with the
 * "\n" of its header. LLaMA-Factory's inference (encode_oneturn) takes the
 * same slots; a conversation that ends with a user turn therefore ends with
 * the generation prompt "<|im_start|>assistant\n".
 */
#ifndef DS_CHAT_H
#define DS_CHAT_H

#include "tokenizer.h"

#include <jv.h>
#include <stddef.h>

/* One message's text, borrowed from whoever holds the conversation. */
typedef struct chat_turn {
	const char *s;
	size_t n;
} chat_turn;

/* The system prompt and the turns, user first, strictly alternating. */
typedef struct chat_conv {
	chat_turn system; /* s == NULL: none given (the template's default applies) */
	chat_turn *turns; /* (n) owned array; the texts are borrowed */
	int n, cap;
} chat_conv;

typedef struct chat_template {
	const char *name;
	const char *default_system;
	const char *system_pre, *system_post; /* around the system prompt */
	const char *user_pre, *user_post;     /* around a user turn, with the assistant header */
	const char *assistant_pre, *assistant_post;
} chat_template;

/* The template called name, or NULL. Returns a static. */
const chat_template *chat_template_find(const char *name);

/* The names of the templates, for messages: "qwen". Static. */
const char *chat_template_names(void);

/* What the last turn must be. */
enum { CHAT_END_ASSISTANT, CHAT_END_USER };

/* Read a record's "conversations" (from/value: human, user, gpt,
 * assistant, system) or "messages" (role/content) list, and its "system"
 * string, into c. A leading system message is the system prompt. Turns
 * alternate from the user; the last is the assistant's (CHAT_END_ASSISTANT,
 * training data) or the user's (CHAT_END_USER, a prompt); no turn is empty.
 * Borrows rec: c's texts live as long as rec does. Returns NULL, or why
 * rec is malformed (static, or in why[0..why_n)). */
const char *chat_conv_parse(jv rec, chat_conv *c, int end, char *why, size_t why_n);

/* Append a turn s[0..n) (borrowed). */
void chat_conv_add(chat_conv *c, const char *s, size_t n);
/* Frees the turn array (not the texts); c may be reused after. */
void chat_conv_free(chat_conv *c);

/* Encoding state, reused from conversation to conversation. Start it as
 * {.tok = t, .tpl = tpl} (both borrowed); free with chat_encoder_free. */
typedef struct chat_encoder {
	const tokenizer *tok;
	const chat_template *tpl;
	tokenizer_ids ids; /* the result of chat_encode */
	size_t *msg_end;   /* (turns) where each turn's slot ends in ids */
	size_t msg_cap;
	char *buf;
	size_t buf_cap;
} chat_encoder;

/* Encode c into e->ids (replacing what was there): the system slot (c's
 * system prompt, else system when not NULL, else the template's default;
 * an empty one leaves the slot out) before the first turn, then each
 * turn's slot; e->msg_end[i] is where turn i's slot ends. Exits with an
 * internal error if a text is not valid UTF-8 (callers check first). */
void chat_encode(chat_encoder *e, const chat_conv *c, const char *system);

void chat_encoder_free(chat_encoder *e);

#endif
