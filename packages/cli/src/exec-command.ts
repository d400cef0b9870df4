/**
 * `turnwise exec`: run code from stdin in the sandbox and print the observation.
 *
 * ```
 * turnwise exec --lang js|python [--timeout-ms N] [--memory-mb N] [--session]
 * ```
 * - `--lang` (default js): the interpreter.
 * - `--timeout-ms N`, `--memory-mb N`: the limits of each cell.
 * - `--session`: stdin holds several cells separated by lines that are exactly
 *   `# %%` or `// %%`; they run in one session (later cells see earlier variables)
 *   and one JSON line is printed per cell.
 *
 * Each observation is printed as one JSON line. The exit code is 0 whenever the
 * sandbox itself worked, whatever the guest did; 2 for a usage error; 1 when the
 * sandbox failed (e.g. a worker could not start).
 *
 * @category constructors
 */
import type { Language, Observation } from "@turnwise/sandbox"
import { createSandboxPool } from "@turnwise/sandbox"

/** Usage text of the command. */
export const execUsage = "usage: turnwise exec --lang js|python [--timeout-ms N] [--memory-mb N] [--session]  (code on stdin)"

interface ExecArgs {
  readonly language: Language
  readonly timeoutMs: number | undefined
  readonly memoryMb: number | undefined
  readonly session: boolean
}

/** Parse the flags; returns an error message for bad usage. */
const parseArgs = (argv: ReadonlyArray<string>): ExecArgs | string => {
  let language: Language = "js"
  let timeoutMs: number | undefined
  let memoryMb: number | undefined
  let session = false
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!
    const [name, inline] = flag.includes("=") ? [flag.slice(0, flag.indexOf("=")), flag.slice(flag.indexOf("=") + 1)] : [flag, undefined]
    const value = (): string | undefined => inline ?? argv[++i]
    if (name === "--session") session = true
    else if (name === "--lang" || name === "--language") {
      const v = value()
      if (v !== "js" && v !== "python") return `--lang must be js or python, got ${JSON.stringify(v ?? "")}`
      language = v
    } else if (name === "--timeout-ms" || name === "--memory-mb") {
      const v = value()
      const n = Number(v)
      if (v === undefined || !Number.isFinite(n) || n <= 0) return `${name} needs a positive number, got ${JSON.stringify(v ?? "")}`
      if (name === "--timeout-ms") timeoutMs = n
      else memoryMb = n
    } else return `unknown flag ${JSON.stringify(flag)}`
  }
  return { language, timeoutMs, memoryMb, session }
}

/** Split stdin into cells at `# %%` / `// %%` lines. */
const cells = (stdin: string): Array<string> => stdin.split(/^[ \t]*(?:#|\/\/)[ \t]*%%.*$/m).filter((c) => c.trim() !== "")

/**
 * Run the `exec` command: `argv` are the arguments after `exec`, `stdin` the code.
 *
 * @example
 * const { stdout, exitCode } = await runExecCommand(["--lang", "js"], "4821*97")
 * // stdout: '{"ok":true,"stdout":"","value":"467637","durationMs":12.3}\n', exitCode: 0
 */
export const runExecCommand = async (argv: ReadonlyArray<string>, stdin: string): Promise<{ stdout: string; exitCode: number }> => {
  if (argv.includes("--help") || argv.includes("-h")) return { stdout: execUsage + "\n", exitCode: 0 }
  const args = parseArgs(argv)
  if (typeof args === "string") return { stdout: `${args}\n${execUsage}\n`, exitCode: 2 }
  const pool = createSandboxPool({ size: 1 })
  try {
    const session = args.session ? pool.openSession(args.language) : undefined
    const lines: Array<string> = []
    for (const code of args.session ? cells(stdin) : [stdin]) {
      const observation: Observation = await pool.run({
        language: args.language,
        code,
        ...(session === undefined ? {} : { session }),
        ...(args.timeoutMs === undefined ? {} : { timeoutMs: args.timeoutMs }),
        ...(args.memoryMb === undefined ? {} : { memoryMb: args.memoryMb }),
      })
      lines.push(JSON.stringify(observation))
    }
    return { stdout: lines.map((l) => l + "\n").join(""), exitCode: 0 }
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause)
    return { stdout: JSON.stringify({ sandboxError: message }) + "\n", exitCode: 1 }
  } finally {
    await pool.close()
  }
}
