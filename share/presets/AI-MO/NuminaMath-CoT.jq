# AI-MO/NuminaMath-CoT: columns source, problem, solution, messages.
# The reference answer is the last \boxed{} of the solution.
#
# Parameters (-P KEY=VALUE), the filters published distillation recipes use:
#   sources=amc_aime,olympiads,...  keep only these values of the source column
#   drop_figures=true     drop problems that refer to a figure or a diagram
#   drop_multipart=true   drop problems with parts (a)/(b), (1)/(2), (I)/(II)
#   require_boxed=true    drop problems whose solution has no \boxed{} answer
def mentions_figure:
  test("\\b(figure|diagram|graph shown|shown below|pictured)\\b|\\[asy\\]"; "i");
def multipart:
  (test("\\(a\\)") and test("\\(b\\)")) or (test("\\(1\\)") and test("\\(2\\)"))
  or (test("\\(I\\)") and test("\\(II\\)")) or test("\\bpart \\(?[ab]\\)?\\b"; "i");

(.solution | ds_last_boxed) as $answer
| ds_list("sources") as $keep
| select($keep == null or ((.source // "") as $s | $keep | any(.[]; . == $s)))   # (not index: it leaks in jq 1.6)
| select((ds_flag("drop_figures"; false) | not) or ((.problem // "") | mentions_figure | not))
| select((ds_flag("drop_multipart"; false) | not) or ((.problem // "") | multipart | not))
| select((ds_flag("require_boxed"; false) | not) or $answer != null)
| {domain: "math", problem, answer: $answer, solution, meta: del(.problem, .solution)}
