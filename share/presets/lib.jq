# lib.jq — definitions every preset may use. ds-fetch puts this text in
# front of the preset's own. Variables every preset sees:
#   $dataset  the repo id or file name     $config, $split  as fetched
#   $row_idx  the row's index (a number)   $params  the -P KEY=VALUE pairs

# Drop white space at both ends (jq 1.6 has no trim).
def ds_trim: sub("^\\s+"; "") | sub("\\s+$"; "");

# Input: the text just after an opening brace. Output: the text up to the
# brace that closes it, nested braces counted; null when it never closes.
def ds_balanced:
  explode as $c
  | (reduce range(0; $c | length) as $k ({depth: 1, end: null};
       if .end != null then .
       elif $c[$k] == 123 then .depth += 1
       elif $c[$k] == 125 then (.depth -= 1 | if .depth == 0 then .end = $k else . end)
       else . end)) as $r
  | if $r.end == null then null else $c[0:$r.end] | implode end;

# The content of the last \boxed{...} or \fbox{...} in a string, or null.
def ds_last_boxed:
  if type != "string" then null else
    ([match("\\\\(?:boxed|fbox)\\s*\\{"; "g")] | last) as $m
    | if $m == null then null else .[($m.offset + $m.length):] | ds_balanced end
  end;

# A parameter as a boolean: absent means default; "true"/"1"/true mean true.
def ds_flag($name; $default):
  ($params[$name]) as $v
  | if $v == null then $default else ($v == true or $v == "true" or $v == 1 or $v == "1") end;

# A parameter as a list of strings: "a,b" or ["a","b"]; null when absent.
def ds_list($name):
  ($params[$name]) as $v
  | if $v == null then null elif ($v | type) == "array" then $v else ($v | tostring | split(",")) end;

# A JSON string cell (as APPS/TACO keep input_output) parsed, or null.
def ds_fromjson_or_null: if type == "string" and . != "" then (fromjson? // null) else null end;
