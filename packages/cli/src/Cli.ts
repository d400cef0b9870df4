/**
 * The `turnwise` command tree, built with effect/cli: one module per command under
 * commands/, each with its typed flags, descriptions and usage line. Every command
 * answers `--help`; the help of a command that takes `--set` lists every settable key
 * with its default and accepted values.
 *
 * Commands: start, train, eval, sample, report, sft, export, compare, exec, serve, runner;
 * `turnwise --help` prints each one's command line.
 *
 * A new command is one module under commands/ (its flags, handler, description and
 * `withUsage` line) and one entry in {@link cli}.
 *
 * @category constructors
 */
import { createRequire } from "node:module"
import { Effect, Layer } from "effect"
import { Command } from "effect/cli"
import { recipes } from "@turnwise/recipes"
import { compare } from "./commands/compare.js"
import { evalCommand } from "./commands/eval.js"
import { exec } from "./commands/exec.js"
import { exportCommand } from "./commands/export.js"
import { extraHelp } from "./commands/help.js"
import { cliPlatform } from "./commands/platform.js"
import { report } from "./commands/report.js"
import { rolloutRunner } from "./commands/rollout-runner.js"
import { runCommand } from "./commands/runner.js"
import { sample } from "./commands/sample.js"
import { serve } from "./commands/serve.js"
import { sft } from "./commands/sft.js"
import { start } from "./commands/start.js"
import { train } from "./commands/train.js"
import { CommandIo } from "./io.js"
import type { Io } from "./io.js"

/**
 * The command tree.
 *
 * @category constructors
 */
export const cli = Command.make("turnwise").pipe(
  Command.withDescription("RL fine-tuning of tool-using language-model policies (GTPO, GRPO and friends)"),
  Command.withSubcommands([start, train, evalCommand, sample, report, sft, exportCommand, compare, exec, serve, rolloutRunner]),
)

const version = (createRequire(import.meta.url)("../package.json") as { readonly version: string }).version

const runTree = runCommand(cli, { version, extraHelp: extraHelp(cli, recipes.gtpo) })

/**
 * Run the command line `argv` (the words after `turnwise`); succeeds with the exit code.
 * `turnwise help [command]` is `turnwise [command] --help`.
 *
 * @example
 * process.exitCode = await Effect.runPromise(runCli(["train", "--help"]).pipe(Effect.provide(Layer.merge(cliPlatform, CommandIo.layerNode))))
 */
export const runCli = (argv: ReadonlyArray<string>): Effect.Effect<number, never, Command.Environment | CommandIo> =>
  runTree(argv[0] === "help" ? [...argv.slice(1), "--help"] : argv)

/**
 * Run the CLI in-process with the given streams; resolves with the exit code.
 *
 * @example
 * const code = await main(["eval", "--checkpoint", "assets/warm-start"], recorder)
 */
export const main = (argv: ReadonlyArray<string>, io: Io): Promise<number> =>
  Effect.runPromise(runCli(argv).pipe(Effect.provide(Layer.merge(cliPlatform, CommandIo.layer(io)))))
