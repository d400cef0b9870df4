/** Run the CLI in-process and capture what it prints. */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { main } from "../../packages/cli/src/Cli.js"

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export const cli = async (argv: ReadonlyArray<string>, stdin = ""): Promise<CliResult> => {
  let stdout = ""
  let stderr = ""
  const code = await main(argv, {
    log: (line) => void (stderr += line + "\n"),
    stdout: (text) => void (stdout += text),
    readStdin: async () => stdin,
    tty: false,
  })
  return { code, stdout, stderr }
}

export const tempDir = (prefix: string): string => mkdtempSync(path.join(tmpdir(), `turnwise-${prefix}-`))

/** Small sizes so a CLI run takes seconds. */
export const tinyRun = [
  "--set",
  "train.promptsPerStep=2",
  "--set",
  "rollout.groupSize=3",
  "--set",
  "rollout.maxNewTokensPerTurn=24",
  "--set",
  "rollout.maxTurns=2",
  "--set",
  "task.trainCount=16",
  "--set",
  "task.evalCount=3",
  "--set",
  "train.evalEvery=0",
  "--set",
  "train.checkpointEvery=1",
] as const
