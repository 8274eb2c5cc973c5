/* ompenv.h — passive OpenMP waiting unless the user chose otherwise.
 *
 * Every ds program linked with libgomp starts with OMP_WAIT_POLICY=passive
 * when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is in its environment;
 * either, when set, is left alone and wins. The variable is then in the
 * program's environment, so its children inherit it. Nothing to call: the
 * work happens in a DT_PREINIT_ARRAY entry, before any library starts.
 */
#ifndef DS_OMPENV_H
#define DS_OMPENV_H

/* The entry in the executable's .preinit_array. Not to be called; cli.c
 * refers to it so that the static archive's ompenv.o is linked into every
 * program (an archive member nobody refers to is left out). */
extern void (*const ompenv_preinit)(int argc, char **argv, char **envp);

#endif
