/**
 * Where a command writes and what it reads: the terminal in the `turnwise` command,
 * a recorder in tests. Results go to `stdout` (JSON lines, transcripts, tables that
 * scripts read); progress, help for a wrong invocation and errors go to `log`
 * (stderr).
 *
 * @category services
 */
import { Context, Layer } from "effect"

/**
 * A command's input and output streams.
 *
 * @category models
 */
export interface Io {
  readonly log: (line: string) => void
  readonly stdout: (text: string) => void
  readonly readStdin: () => Promise<string>
  readonly tty: boolean
}

const readProcessStdin = async (): Promise<string> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
}

/**
 * The streams of the running command, as a service the command handlers ask for.
 *
 * @example
 * const io = yield* CommandIo
 * io.log("training gtpo for 60 steps")
 *
 * @category services
 */
export class CommandIo extends Context.Service<CommandIo, Io>()("turnwise/cli/CommandIo") {
  /** Given streams (tests record them). */
  static readonly layer = (io: Io): Layer.Layer<CommandIo> => Layer.succeed(CommandIo, io)

  /** The process's stdin, stdout and stderr. */
  static readonly layerNode: Layer.Layer<CommandIo> = Layer.sync(CommandIo, () => ({
    log: (line) => void process.stderr.write(line + "\n"),
    stdout: (text) => void process.stdout.write(text),
    readStdin: readProcessStdin,
    tty: process.stdout.isTTY === true,
  }))
}
