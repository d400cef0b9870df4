/**
 * `turnwise exec` in-process: what it prints on stdout and its exit code, for code
 * that runs the command without a terminal.
 *
 * @category constructors
 */
import { main } from "./Cli.js"

/**
 * Run `turnwise exec` with the arguments after `exec` and `stdin` as the code; the
 * stderr lines (usage and errors) are dropped.
 *
 * @example
 * const { stdout, exitCode } = await runExecCommand(["--lang", "js"], "4821*97")
 * // stdout: '{"ok":true,"stdout":"","value":"467637","durationMs":12.3}\n', exitCode: 0
 */
export const runExecCommand = async (argv: ReadonlyArray<string>, stdin: string): Promise<{ stdout: string; exitCode: number }> => {
  let stdout = ""
  const exitCode = await main(["exec", ...argv], {
    log: () => {},
    stdout: (text) => void (stdout += text),
    readStdin: async () => stdin,
    tty: false,
  })
  return { stdout, exitCode }
}
