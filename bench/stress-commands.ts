/**
 * Do the commands always finish? Runs `turnwise sample`, `eval` and `exec` (with guests
 * that break their deadline: `while True: pass`, a Python loop that catches the
 * interrupt, `while(true){}` in JavaScript) as child processes through
 * packages/cli/bin/turnwise.mjs, each `--runs` times, interleaved, while other processes
 * spin on every core. Each run must exit by itself with its result within `--bound-s`
 * seconds (else it is killed and counted as a failure) and leave no `.turnwise-tmp/<cmd>-<pid>`
 * directory behind.
 *
 * Prints one JSON line per run (`"bench": "stress-commands-run"`) as it ends, then one per
 * command: runs, exits with result, exit codes, max seconds, directories left behind.
 *
 *   npx tsx bench/stress-commands.ts [--runs 30] [--parallel 2] [--load 2] [--bound-s 300]
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { existsSync, rmSync } from "node:fs"
import { cpus } from "node:os"
import * as path from "node:path"

const flag = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`)
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} needs a number, got ${process.argv[at + 1]}`)
  return value
}
const runsPerCommand = flag("runs", 30)
const parallel = Math.max(1, flag("parallel", 2))
const loadProcesses = flag("load", cpus().length)
const boundSeconds = flag("bound-s", 300)

const root = path.resolve(import.meta.dirname, "..")
const bin = path.join(root, "packages/cli/bin/turnwise.mjs")

interface Case {
  readonly command: "sample" | "eval" | "exec"
  readonly label: string
  readonly args: ReadonlyArray<string>
  readonly stdin: string
  /** Whether the run's stdout is the command's result. */
  readonly isResult: (stdout: string) => boolean
}

const lastJson = (stdout: string): Record<string, unknown> | null => {
  const line = stdout.trim().split("\n").at(-1) ?? ""
  try {
    return JSON.parse(line) as Record<string, unknown>
  } catch {
    return null
  }
}
const timedOut = (stdout: string): boolean => lastJson(stdout)?.["kind"] === "timeout"

const guests: ReadonlyArray<{ readonly label: string; readonly lang: string; readonly code: string }> = [
  { label: "python while True: pass", lang: "python", code: "while True: pass\n" },
  {
    label: "python loop catching KeyboardInterrupt",
    lang: "python",
    code: "while True:\n    try:\n        while True: pass\n    except KeyboardInterrupt:\n        pass\n",
  },
  { label: "js while(true){}", lang: "js", code: "while(true){}" },
]

const cases = (run: number): ReadonlyArray<Case> => {
  const guest = guests[run % guests.length]!
  return [
    {
      command: "sample",
      label: "sample --n 2",
      args: ["sample", "--checkpoint", "assets/warm-start", "--question", "482*97=?", "--n", "2"],
      stdin: "",
      isResult: (stdout) => stdout.includes("--- finish:"),
    },
    {
      command: "eval",
      label: "eval, 4 held-out problems",
      args: ["eval", "--checkpoint", "assets/warm-start", "--set", "task.evalCount=4"],
      stdin: "",
      isResult: (stdout) => typeof lastJson(stdout)?.["metrics"] === "object",
    },
    {
      command: "exec",
      label: `exec ${guest.label}`,
      args: ["exec", "--lang", guest.lang, "--timeout-ms", "2000"],
      stdin: guest.code,
      isResult: timedOut,
    },
  ]
}

interface Outcome {
  readonly command: Case["command"]
  readonly label: string
  readonly exitCode: number | null
  readonly signal: string | null
  readonly killedAtBound: boolean
  readonly seconds: number
  readonly withResult: boolean
  readonly leftTmpDir: boolean
  readonly stderrTail: string
}

/** Commands running now (killed with the load if this script is interrupted). */
const running = new Set<ChildProcess>()

const runOnce = (c: Case): Promise<Outcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(process.execPath, [bin, ...c.args], { cwd: root, stdio: ["pipe", "pipe", "pipe"] })
    running.add(child)
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
    child.stdin.end(c.stdin)
    let killedAtBound = false
    const bound = setTimeout(() => {
      killedAtBound = true
      child.kill("SIGKILL")
    }, boundSeconds * 1000)
    child.on("close", (exitCode, signal) => {
      running.delete(child)
      clearTimeout(bound)
      const tmp = path.join(root, ".turnwise-tmp", `${c.command}-${child.pid}`)
      const leftTmpDir = existsSync(tmp)
      // A run killed at the bound cannot clean up; remove its directory so the next runs start clean.
      if (leftTmpDir) rmSync(tmp, { recursive: true, force: true })
      resolve({
        command: c.command,
        label: c.label,
        exitCode,
        signal,
        killedAtBound,
        seconds: +((performance.now() - started) / 1000).toFixed(1),
        withResult: exitCode === 0 && !killedAtBound && c.isResult(stdout),
        leftTmpDir,
        stderrTail: stderr.slice(-300),
      })
    })
  })

const load: Array<ChildProcess> = Array.from({ length: loadProcesses }, () => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }))
const stopLoad = (): void => {
  for (const hog of load) hog.kill("SIGKILL")
}
const stopAll = (): void => {
  stopLoad()
  for (const child of running) child.kill("SIGKILL")
}
process.on("exit", stopAll)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    stopAll()
    process.exit(130)
  })
}

console.log(JSON.stringify({ bench: "stress-commands", runsPerCommand, parallel, loadProcesses, boundSeconds, cores: cpus().length }))
const queue: Array<Case> = []
for (let run = 0; run < runsPerCommand; run++) queue.push(...cases(run))
const outcomes: Array<Outcome> = []
await Promise.all(
  Array.from({ length: parallel }, async () => {
    for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
      const outcome = await runOnce(c)
      outcomes.push(outcome)
      const { stderrTail, ...shown } = outcome
      console.log(JSON.stringify({ bench: "stress-commands-run", ...shown, ...(outcome.withResult ? {} : { stderrTail }) }))
    }
  }),
)
stopLoad()

for (const command of ["sample", "eval", "exec"] as const) {
  const mine = outcomes.filter((o) => o.command === command)
  const exitCodes: Record<string, number> = {}
  for (const o of mine) {
    const key = o.killedAtBound ? "killed at bound" : o.exitCode === null ? `signal ${o.signal}` : String(o.exitCode)
    exitCodes[key] = (exitCodes[key] ?? 0) + 1
  }
  console.log(
    JSON.stringify({
      bench: "stress-commands",
      command,
      runs: mine.length,
      exitsWithResult: mine.filter((o) => o.withResult).length,
      exitCodes,
      maxSeconds: Math.max(0, ...mine.map((o) => o.seconds)),
      leftTmpDirs: mine.filter((o) => o.leftTmpDir).length,
    }),
  )
}
