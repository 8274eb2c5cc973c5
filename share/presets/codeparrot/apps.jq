# codeparrot/apps: columns problem_id, question, solutions (a JSON string),
# input_output (a JSON string: {"inputs", "outputs", "fn_name"?}),
# difficulty, url, starter_code. Tests come from input_output; the other
# columns (difficulty among them) go to meta unchanged.
{domain: "code", problem: .question, tests: (.input_output | ds_fromjson_or_null),
 starter_code: (.starter_code // ""), meta: del(.question, .input_output, .starter_code)}
