# generic: for files that are already close to problem records. The
# problem comes from the first of problem, question, prompt, instruction,
# input; answer, solution, domain, tests and starter_code are kept when
# present; everything else goes to meta.
(.problem // .question // .prompt // .instruction // .input
 // error("no problem, question, prompt, instruction or input field")) as $p
| {domain: (.domain // "unknown"), problem: $p}
  + (if .answer != null then {answer: (.answer | tostring)} else {} end)
  + (if .solution != null then {solution} else {} end)
  + (if .tests != null then {tests} else {} end)
  + (if .starter_code != null then {starter_code} else {} end)
  + {meta: del(.problem, .question, .prompt, .instruction, .input, .answer, .solution, .domain, .tests, .starter_code)}
