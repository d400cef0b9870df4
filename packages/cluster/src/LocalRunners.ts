/**
 * Runner processes on this machine: `cluster.runners=N` starts N of them, each a
 * Node process serving rollout workers on its own port, and waits until all have
 * registered with the run's runner storage. Stopping sends SIGTERM and waits for
 * the exits; a runner that already died (killed, crashed) is simply gone.
 *
 * @category constructors
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Data, Effect, Schedule } from "effect"
import type { Scope } from "effect"
import { lockExpirationMs } from "./ClusterSettings.js"
import type { ClusterDirs } from "./ClusterSettings.js"
import { forgetRunner } from "./FileRunnerStorage.js"
import { freePort } from "./FreePort.js"

/** The runners could not be started or did not join in time. */
export class LocalRunnersError extends Data.TaggedError("LocalRunnersError")<{ readonly problem: string }> {
  override get message(): string {
    return `local runners: ${this.problem}`
  }
}

/** One started runner. */
export interface LocalRunner {
  readonly port: number
  readonly process: ChildProcess
  /** Resolves with the signal (or exit code) the process ended with. */
  readonly exited: Promise<NodeJS.Signals | number | null>
}

/** What every runner of a run is told. */
export interface LocalRunnerSettings {
  readonly dirs: ClusterDirs
  readonly model: unknown
  readonly optimizer: unknown
  readonly sandboxWorkers: number
  /** Fault injection (tests): the first runner to accept a prompt of this step or later kills itself with SIGKILL. */
  readonly dieAtStep?: number
  /** Where runner output goes (default: inherited stderr). */
  readonly log?: (line: string) => void
}

const runnerMain = path.join(path.dirname(fileURLToPath(import.meta.url)), "runner-main.ts")

const registeredPorts = (storageDir: string): Array<number> => {
  try {
    const state = JSON.parse(fs.readFileSync(path.join(storageDir, "runners.json"), "utf8")) as { runners: Record<string, unknown> }
    return Object.keys(state.runners).map((address) => Number(address.split(":").pop()))
  } catch {
    return []
  }
}

/**
 * Start `count` runner processes; they are stopped when the scope closes.
 *
 * @example
 * const runners = yield* startLocalRunners(2, { dirs, model: presets.tiny, optimizer: recipe.optimizer, sandboxWorkers: 1 })
 */
export const startLocalRunners = (count: number, settings: LocalRunnerSettings): Effect.Effect<ReadonlyArray<LocalRunner>, LocalRunnersError, Scope.Scope> =>
  Effect.gen(function*() {
    let stopping = false
    const runners = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const started: Array<LocalRunner> = []
          fs.mkdirSync(settings.dirs.storageDir, { recursive: true })
          for (let k = 0; k < count; k++) {
            const port = await freePort()
            const spec = {
              port,
              storageDir: settings.dirs.storageDir,
              weightsDir: settings.dirs.weightsDir,
              model: settings.model,
              optimizer: settings.optimizer,
              sandboxWorkers: settings.sandboxWorkers,
              ...(settings.dieAtStep === undefined
                ? {}
                : { dieAtStep: settings.dieAtStep, dieMarker: path.join(settings.dirs.storageDir, "..", "fault-claimed") }),
            }
            const child = spawn(process.execPath, ["--import", "tsx", runnerMain], {
              env: { ...process.env, TURNWISE_RUNNER_SPEC: JSON.stringify(spec) },
              stdio: ["ignore", "pipe", "pipe"],
            })
            const forward = (chunk: Buffer) => {
              for (const line of chunk.toString().split("\n")) {
                if (line.trim() !== "") (settings.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(`[runner ${port}] ${line}`)
              }
            }
            child.stdout?.on("data", forward)
            child.stderr?.on("data", forward)
            const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
              child.once("exit", (code, signal) => {
                // A runner that died is taken out of the membership now, so its shards move without waiting for pings.
                if (!stopping) forgetRunner({ dir: settings.dirs.storageDir, lockExpirationMs }, `127.0.0.1:${port}`)
                resolve(signal ?? code)
              })
            )
            started.push({ port, process: child, exited })
          }
          return started
        },
        catch: (error) => new LocalRunnersError({ problem: `cannot start: ${error instanceof Error ? error.message : String(error)}` }),
      }),
      (runners) =>
        Effect.promise(async () => {
          stopping = true
          for (const runner of runners) if (runner.process.exitCode === null && runner.process.signalCode === null) runner.process.kill("SIGTERM")
          await Promise.all(
            runners.map((runner) =>
              Promise.race([runner.exited, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]).then(() => {
                if (runner.process.exitCode === null && runner.process.signalCode === null) runner.process.kill("SIGKILL")
              })
            ),
          )
        }),
    )
    yield* Effect.suspend(() => {
      const joined = registeredPorts(settings.dirs.storageDir)
      const dead = runners.filter((r) => r.process.exitCode !== null || r.process.signalCode !== null)
      if (dead.length > 0) return Effect.fail(new LocalRunnersError({ problem: `runner on port ${dead[0]!.port} exited before joining` }))
      return runners.every((r) => joined.includes(r.port))
        ? Effect.void
        : Effect.fail(
          new LocalRunnersError({
            problem: `${runners.length - runners.filter((r) => joined.includes(r.port)).length} of ${count} runners did not join within 120 s`,
          }),
        )
    }).pipe(Effect.retry({ schedule: Schedule.spaced("200 millis"), while: (e) => !e.problem.includes("exited"), times: 600 }))
    return runners
  })
