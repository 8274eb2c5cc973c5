# The teacher stage's cost: $n problems, each $p prompt and $c completion
# tokens, at the list prices of model $m in the price table ($t).
$t[0][$m] as $r
| if $r == null then
    "estimate: \($n) problems x (\($p) prompt + \($c) completion tokens) with \($m):"
    + " no list price for it in the table (a local server costs its machine's time)"
  else
    ($n * ($p * $r.input_cache_miss + $c * $r.output) / 1e6) as $usd
    | "estimate: \($n) problems x (\($p) prompt + \($c) completion tokens) with \($m)"
      + " at $\($r.input_cache_miss) in / $\($r.output) out per million tokens"
      + " = $\($usd * 100 | round / 100) (list prices; set LIMIT, EST_PROMPT, EST_COMPLETION)"
  end
