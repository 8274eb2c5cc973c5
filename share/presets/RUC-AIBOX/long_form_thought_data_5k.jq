# RUC-AIBOX/long_form_thought_data_5k: columns question, combined_text,
# domain. combined_text holds the long thought and the solution:
#   <|begin_of_thought|> ... <|end_of_thought|> <|begin_of_solution|> ... <|end_of_solution|>
# The thought goes to meta.thought (ds-teacher --offline uses it as the
# chain of thought), the solution to solution, its last \boxed{} to answer.
(.combined_text // ""
 | capture("<\\|begin_of_thought\\|>(?<thought>[\\s\\S]*)<\\|end_of_thought\\|>\\s*<\\|begin_of_solution\\|>(?<solution>[\\s\\S]*)<\\|end_of_solution\\|>")
 // error("combined_text lacks the <|begin_of_thought|>/<|begin_of_solution|> sections")) as $m
| ($m.solution | ds_trim) as $solution
| {domain: (.domain // "unknown"), problem: .question, answer: ($solution | ds_last_boxed),
   solution: $solution, meta: (del(.question, .combined_text, .domain) + {thought: ($m.thought | ds_trim)})}
