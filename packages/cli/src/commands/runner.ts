/**
 * Running a command tree: arguments in, exit code out, every word written through
 * {@link CommandIo}.
 *
 * - `--help` prints the generated help on stdout and exits 0.
 * - A wrong command line (unknown flag, bad value, missing argument, unknown
 *   command) prints what is wrong, the command's usage line and where to find its
 *   options on stderr, and exits 2. No command at all prints the help and exits 2.
 * - Work that fails prints `error: <message>` on stderr and exits 1.
 *
 * @category constructors
 */
import { Cause, Effect, Layer, Option } from "effect"
import { CliConfig, CliError, CliOutput, Command, GlobalFlag } from "effect/cli"
import type { HelpDoc } from "effect/cli"
import { CommandIo } from "../io.js"
import type { Io } from "../io.js"
import { CommandFailed, describeError } from "./CommandFailed.js"
import { usageOf } from "./usage.js"

/** How the runner documents the commands beyond effect/cli's generated help. */
export interface RunnerOptions {
  readonly version: string
  /** Sections appended to a command's help (e.g. its `--set` keys). */
  readonly extraHelp: (doc: HelpDoc.HelpDoc) => ReadonlyArray<string>
}

/** `"float32" | "bfloat16"` (effect/cli's expectation of a choice) as `float32 or bfloat16`. */
const choicesText = (expected: string): string | undefined => {
  if (!/^"[^"]*"( \| "[^"]*")+$/.test(expected)) return undefined
  const choices = expected.split(" | ").map((c) => c.slice(1, -1))
  return `${choices.slice(0, -1).join(", ")} or ${choices[choices.length - 1]}`
}

/** One line saying what is wrong with the command line. */
export const describeCliError = (error: CliError.CliError): string => {
  if (error._tag === "InvalidValue" && error.kind === "flag" && error.value !== "") {
    const choices = choicesText(error.expected)
    if (choices !== undefined) return `--${error.option} must be ${choices}, got "${error.value}"`
  }
  return error.message
}

const isMissingInput = (error: CliError.CliError): boolean =>
  error._tag === "MissingArgument" || error._tag === "MissingOption" || (error._tag === "InvalidValue" && error.kind === "argument")

const invalidInvocation = (event: CliOutput.Presenter.InvalidInvocation): string => {
  const usage = usageOf(event.helpDoc.annotations)
  const lines = event.errors.map(describeCliError)
  if (usage?.needs !== undefined && event.errors.some(isMissingInput)) lines.push(usage.needs)
  lines.push(`usage: ${usage?.synopsis ?? event.helpDoc.usage}`)
  const subcommands = (event.helpDoc.subcommands ?? []).flatMap((group) => group.commands.map((c) => c.name))
  if (subcommands.length > 0) lines.push(`commands: ${subcommands.join(", ")}`)
  lines.push(`(${event.commandPath.join(" ")} --help lists every option)`)
  return lines.join("\n")
}

const presenter = (io: Io, formatter: CliOutput.Formatter): CliOutput.Presenter => ({
  present: (event) =>
    Effect.sync(() => {
      switch (event._tag) {
        case "Help":
          return io.stdout(formatter.formatHelpDoc(event.helpDoc) + "\n")
        case "Version":
          return io.stdout(formatter.formatVersion(event.name, event.version) + "\n")
        case "InvalidInvocation":
          return io.log(invalidInvocation(event))
      }
    }),
})

/** The exit code of a failed run, after saying why on stderr. */
const exitCodeOf = (cause: Cause.Cause<unknown>, io: Io): number => {
  const error = Cause.findErrorOption(cause)
  if (Option.isSome(error)) {
    const value = error.value
    if (CliError.isCliError(value)) {
      // ShowHelp was already presented (the help, or the wrong invocation).
      if (value._tag !== "ShowHelp") io.log(describeCliError(value))
      return 2
    }
    io.log(`error: ${value instanceof CommandFailed ? value.message : describeError(value)}`)
    return 1
  }
  if (Cause.hasInterruptsOnly(cause)) {
    io.log("interrupted")
    return 130
  }
  io.log(`error: ${describeError(Cause.squash(cause))}`)
  return 1
}

/**
 * Run `command` on `argv` (the words after the program name); succeeds with the exit
 * code.
 *
 * @example
 * const code = yield* runCommand(cli, { version: "0.1.0", extraHelp: () => [] })(["train", "--help"])
 */
export const runCommand =
  <Name extends string, Input, ContextInput, E, R>(command: Command.Command<Name, Input, ContextInput, E, R>, options: RunnerOptions) =>
  (argv: ReadonlyArray<string>): Effect.Effect<number, never, R | Command.Environment | CommandIo> =>
    Effect.gen(function*() {
      const io = yield* CommandIo
      const base = CliOutput.defaultFormatter({ colors: io.tty && process.env.NO_COLOR === undefined })
      const formatter: CliOutput.Formatter = {
        ...base,
        formatHelpDoc: (doc) => [base.formatHelpDoc(doc), ...options.extraHelp(doc)].join("\n\n"),
      }
      return yield* Command.runWith(command, { version: options.version })(argv).pipe(
        Effect.as(0),
        Effect.catchCause((cause) => Effect.sync(() => exitCodeOf(cause, io))),
        Effect.provide(
          Layer.mergeAll(
            CliOutput.layer(formatter),
            CliOutput.layerPresenter(presenter(io, formatter)),
            CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Version] }),
          ),
        ),
      )
    })
