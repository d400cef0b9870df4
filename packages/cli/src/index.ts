/**
 * @turnwise/cli: run orchestration (train, sft, eval, compare, export), reports,
 * the `turnwise` command and the Promise facade. The only package that knows the
 * shipped recipes.
 */
export { cli, main, runCli } from "./Cli.js"
export * from "./exec-command.js"
export * from "./facade.js"
export { CommandIo } from "./io.js"
export type { Io } from "./io.js"
export * from "./report/html.js"
export * from "./run/compare.js"
export * from "./run/context.js"
export * from "./run/data.js"
export * from "./run/export.js"
export * from "./run/RunConfig.js"
export * from "./run/sft.js"
export * from "./run/start.js"
export * from "./run/task-source.js"
export * from "./run/train.js"
export * from "./serve/index.js"
