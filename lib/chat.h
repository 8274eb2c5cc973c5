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
 *
 * The `deepseekr1` template (alias `r1-distill`) is LLaMA-Factory 0.9.5's
 * of that name, DeepSeek-R1-Distill-Qwen's own format: the BOS token
 * <｜begin▁of▁sentence｜>, the system prompt as bare text (none by default),
 * "<｜User｜>" user "<｜Assistant｜>", then the assistant turn and the EOS
 * token <｜end▁of▁sentence｜>, each slot encoded on its own. It is a
 * ReasoningTemplate, with LF's defaults (enable_thinking true,
 * preserve_thinking false) and thought words "<think>\n" and "\n</think>\n\n":
 *  - training, each assistant turn whose text has neither "<think>" nor
 *    "</think>" gets the empty thought "<think>\n\n</think>\n\n" (encoded
 *    on its own) before it, trained; a turn with a thought keeps it as
 *    written, in every turn, history included;
 *  - training under mask_history (chat_encoder.mask_history), the earlier
 *    assistant turns lose their thoughts (every "<think>\n...\n</think>\n\n",
 *    then leading newlines) and get no empty thought; only the last turn is
 *    treated as above (LF's discarding_history_cot);
 *  - a prompt (a conversation ending with a user turn, encode_oneturn) loses
 *    the thoughts of every assistant turn in it, and ends with the
 *    generation prompt "<｜Assistant｜>" (LF adds no "<think>\n" there).
 * LF's two switches are chat_encoder's preserve_thinking (earlier turns keep
 * their thoughts: in a prompt, and under mask_history) and no_thinking
 * (enable_thinking false: training, every thought is cut out and the empty
 * thought goes at the end of the user's slot, untrained; a prompt ends
 * with the empty thought, so the model answers without one).
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
	int first;        /* chat_conv_parse: the list's index of turn 0 (1 after a leading system message) */
} chat_conv;

typedef struct chat_template {
	const char *name;
	const char *default_system;
	const char *bos;                      /* a token first of all (LF's format_prefix), or "" */
	const char *system_pre, *system_post; /* around the system prompt */
	const char *user_pre, *user_post;     /* around a user turn, with the assistant header */
	const char *assistant_pre, *assistant_post;
	const char *eos;    /* a token after each assistant turn, a slot of its own, or "" */
	const char *stop;   /* the token that ends an assistant turn: generation stops there */
	int reasoning;      /* LF's ReasoningTemplate: thoughts as described above */
	const char *tokens[4]; /* texts the tokenizer must have as single tokens */
} chat_template;

/* The template called name (or an alias of it), or NULL. Returns a static. */
const chat_template *chat_template_find(const char *name);

/* The names of the templates, for messages: "qwen, deepseekr1". Static. */
const char *chat_template_names(void);

/* The template a tokenizer was made for, from its added tokens: deepseekr1
 * when <｜User｜> and <｜Assistant｜> are single tokens (DeepSeek-R1-Distill-
 * Qwen), qwen when <|im_start|> and <|im_end|> are (Qwen2/2.5's ChatML);
 * NULL when neither. Borrows t; returns a static. */
const chat_template *chat_template_guess(const tokenizer *t);

/* NULL when t has every token tpl is written with, as one token each; else
 * why not, in why[0..why_n). Borrows both. Without this check a template's
 * markers would be tokenized as plain text, and train silently wrong. */
const char *chat_template_check(const chat_template *tpl, const tokenizer *t, char *why,
				size_t why_n);

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

/* A preference pair (LLaMA-Factory's ranking data) into c, the prompt and
 * the chosen reply, and r, the prompt and the rejected one. Two layouts:
 *  - "conversations" or "messages" holding the prompt (ending with a user
 *    turn), "chosen" and "rejected" each a message of that layout (or a
 *    string): LLaMA-Factory's sharegpt ranking format, ds-sharegpt -f dpo;
 *  - no prompt list, "chosen" and "rejected" whole conversations (lists of
 *    messages) that share every message but their last: the prompt is what
 *    they share (TRL's implicit prompt). Sides that differ earlier share no
 *    prompt, and are refused.
 * Each side must then be a conversation chat_conv_parse accepts, ending
 * with the assistant's reply. Borrows rec as chat_conv_parse does. Returns
 * NULL, or why rec is not a pair. */
const char *chat_pair_parse(jv rec, chat_conv *c, chat_conv *r, char *why, size_t why_n);

/* 1 when rec looks like a preference pair (it has "chosen" and "rejected"). */
int chat_is_pair(jv rec);

/* Append a turn s[0..n) (borrowed). */
void chat_conv_add(chat_conv *c, const char *s, size_t n);
/* Frees the turn array (not the texts); c may be reused after. */
void chat_conv_free(chat_conv *c);

/* Encoding state, reused from conversation to conversation. Start it as
 * {.tok = t, .tpl = tpl} (both borrowed), .mask_history = 1 for training
 * under LF's mask_history; free with chat_encoder_free. */
typedef struct chat_encoder {
	const tokenizer *tok;
	const chat_template *tpl;
	int mask_history; /* reasoning templates: drop the earlier turns' thoughts */
	int preserve_thinking; /* LF's preserve_thinking: keep the earlier turns' thoughts */
	int no_thinking;       /* LF's enable_thinking false: no thought is trained or prompted */
	int oneturn;           /* LF's encode_oneturn on a conversation that ends with the
				  assistant (a pair's side): every earlier turn is the prompt's
				  history, its thoughts cut unless preserve_thinking, no empty
				  thought given; the last turn is the trained reply */
	tokenizer_ids ids; /* the result of chat_encode */
	size_t *msg_end;   /* (turns) where each turn's slot ends in ids */
	size_t msg_cap;
	char *buf;
	size_t buf_cap;
} chat_encoder;

/* Encode c into e->ids (replacing what was there): the template's BOS and
 * the system slot (c's system prompt, else system when not NULL, else the
 * template's default; an empty one leaves the slot out) before the first
 * turn, then each turn's slot; e->msg_end[i] is where turn i's slot ends
 * (an assistant slot includes its empty thought and EOS). A c that ends
 * with a user turn is a prompt: it ends with the generation prompt. Exits
 * with an internal error if a text is not valid UTF-8 (callers check
 * first). */
void chat_encode(chat_encoder *e, const chat_conv *c, const char *system);

void chat_encoder_free(chat_encoder *e);

#endif
