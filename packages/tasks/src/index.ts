/**
 * @turnwise/tasks: the built-in task generators (arithmetic, program synthesis),
 * JSONL loaders, answer checking, demonstrations for supervised warm starts and
 * the graders.
 */
export * from "./answers.js"
export { generateProblem, generateProblems, LEVELS, PHRASINGS, splitOf, TaskConfigError, TEMPLATES, WORD_TEMPLATE_NAMES } from "./arithmetic.js"
export type { Level as DifficultyLevel, Phrasing, ProblemGenerateOptions, Split } from "./arithmetic.js"
export * from "./demonstrations.js"
export * from "./exact-answer-task.js"
export * from "./jsonl.js"
export * from "./problem.js"
export * from "./program/demonstrations.js"
export * from "./program/generator.js"
export * from "./program/grade.js"
export { submissionCode } from "./program/harness.js"
export * from "./program/jsonl.js"
export * from "./program/problem.js"
export * from "./program/task.js"
