/**
 * Where a command writes and what it reads: the terminal in the `turnwise` command,
 * a recorder in tests.
 *
 * @category models
 */
export interface Io {
  readonly log: (line: string) => void
  readonly stdout: (text: string) => void
  readonly readStdin: () => Promise<string>
  readonly tty: boolean
}
