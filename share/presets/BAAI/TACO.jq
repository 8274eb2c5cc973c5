# BAAI/TACO: APPS-shaped columns (question, solutions, starter_code,
# input_output as a JSON string, difficulty, ...) plus tags, source,
# time and memory limits; all but the mapped ones go to meta unchanged.
{domain: "code", problem: .question, tests: (.input_output | ds_fromjson_or_null),
 starter_code: (.starter_code // ""), meta: del(.question, .input_output, .starter_code)}
