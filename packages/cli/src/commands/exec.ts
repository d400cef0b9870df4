/**
 * `turnwise exec`: run code from stdin in the sandbox and print each observation as
 * one JSON line.
 *
 * - `--lang` (default js): the interpreter.
 * - `--timeout-ms N`, `--memory-mb N`: the limits of each cell.
 * - `--session`: stdin holds several cells separated by lines that are exactly
 *   `# %%` or `// %%`; they run in one session (later cells see earlier variables)
 *   and one JSON line is printed per cell.
 *
 * The exit code is 0 whenever the sandbox itself worked, whatever the guest did; 2 for
 * a wrong command line; 1 when the sandbox failed (e.g. a worker could not start),
 * after a `{"sandboxError": ...}` line.
 *
 * @category constructors
 */
import { Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import type { Language, Observation } from "@turnwise/sandbox"
import { createSandboxPool } from "@turnwise/sandbox"
import { CommandIo } from "../io.js"
import { attempt, describeError } from "./CommandFailed.js"
import { describedWithDefault, positiveNumber } from "./flags.js"
import { withUsage } from "./usage.js"

/**
 * Split stdin into cells at `# %%` / `// %%` lines.
 *
 * @example
 * cells("var a = 2\n// %%\na * 21\n") // ["var a = 2\n", "\na * 21\n"]
 */
export const cells = (stdin: string): Array<string> => stdin.split(/^[ \t]*(?:#|\/\/)[ \t]*%%.*$/m).filter((c) => c.trim() !== "")

const runCells = async (options: {
  readonly language: Language
  readonly code: ReadonlyArray<string>
  readonly session: boolean
  readonly timeoutMs: number | undefined
  readonly memoryMb: number | undefined
}): Promise<Array<Observation>> => {
  const pool = createSandboxPool({ size: 1 })
  try {
    const session = options.session ? pool.openSession(options.language) : undefined
    const observations: Array<Observation> = []
    for (const code of options.code) {
      observations.push(
        await pool.run({
          language: options.language,
          code,
          ...(session === undefined ? {} : { session }),
          ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
          ...(options.memoryMb === undefined ? {} : { memoryMb: options.memoryMb }),
        }),
      )
    }
    return observations
  } finally {
    await pool.close()
  }
}

/** The `exec` command. */
export const exec = Command.make(
  "exec",
  {
    language: Flag.Literals("lang", ["js", "python"]).pipe(Flag.withAlias("language"), describedWithDefault("The interpreter", "js")),
    timeoutMs: positiveNumber("timeout-ms").pipe(Flag.withDescription("Wall-clock limit of each cell, in ms (default: the sandbox's)"), Flag.optional),
    memoryMb: positiveNumber("memory-mb").pipe(Flag.withDescription("Memory limit of each cell, in MB (default: the sandbox's)"), Flag.optional),
    session: Flag.Boolean("session").pipe(
      Flag.withDescription("Stdin holds cells separated by `# %%` or `// %%` lines, run in one session; one JSON line per cell"),
      Flag.withDefault(false),
    ),
  },
  Effect.fn("turnwise.exec")(function*(flags) {
    const io = yield* CommandIo
    const stdin = yield* attempt(() => io.readStdin())
    const observations = yield* attempt(() =>
      runCells({
        language: flags.language,
        code: flags.session ? cells(stdin) : [stdin],
        session: flags.session,
        timeoutMs: Option.getOrUndefined(flags.timeoutMs),
        memoryMb: Option.getOrUndefined(flags.memoryMb),
      })
    ).pipe(Effect.tapError((failure) => Effect.sync(() => io.stdout(JSON.stringify({ sandboxError: describeError(failure.cause) }) + "\n"))))
    io.stdout(observations.map((o) => JSON.stringify(o) + "\n").join(""))
  }),
).pipe(
  Command.withDescription("Run code from stdin in the sandbox and print the observation as one JSON line (per cell with --session)"),
  withUsage({ synopsis: "turnwise exec --lang js|python [--timeout-ms N] [--memory-mb N] [--session]   (code on stdin)" }),
)
