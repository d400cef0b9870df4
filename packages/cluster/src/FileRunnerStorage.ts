/**
 * Runner membership and shard locks in one file that every local process shares.
 *
 * Effect cluster coordinates runners through a `RunnerStorage`: who is registered,
 * who is healthy, and which runner holds the lock of each shard. The engine ships an
 * in-memory storage (one process) and an SQL one (needs a database server); runners
 * started as local processes on one machine need neither, so this storage keeps the
 * records ({@link RunnerRecords}) in a JSON file, changed under a lock directory
 * (mkdir is atomic) and replaced by rename, so a reader never sees half a file.
 *
 * @category layers
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import { RunnerStorage } from "effect/cluster/RunnerStorage"
import * as RunnerStorageModule from "effect/cluster/RunnerStorage"
import { PersistenceError } from "effect/cluster/ClusterError"
import { emptyRunnerRecords, forgetRunnerIn, runnerStorageOps } from "./RunnerRecords.js"
import type { RunnerRecords } from "./RunnerRecords.js"

const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Options of the shared file storage. */
export interface FileRunnerStorageOptions {
  /** The directory the storage file lives in (created when missing). */
  readonly dir: string
  /** How long an unrefreshed shard lock keeps its owner. */
  readonly lockExpirationMs: number
}

/**
 * Run `change` on the stored state with the lock held; the state it leaves is written back.
 *
 * A lock directory older than a few seconds belongs to a process that died inside the
 * (microsecond-long) critical section, and is broken.
 */
const withState = <A>(options: FileRunnerStorageOptions, change: (state: RunnerRecords) => A): A => {
  const file = path.join(options.dir, "runners.json")
  const lock = path.join(options.dir, "runners.lock")
  fs.mkdirSync(options.dir, { recursive: true })
  for (;;) {
    try {
      fs.mkdirSync(lock)
      break
    } catch {
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 5_000) fs.rmdirSync(lock)
      } catch {
        // Released in the meantime: try again.
      }
      sleepSync(2)
    }
  }
  try {
    const state: RunnerRecords = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as RunnerRecords) : emptyRunnerRecords()
    const result = change(state)
    const tmp = `${file}.${process.pid}.tmp`
    fs.writeFileSync(tmp, JSON.stringify(state))
    fs.renameSync(tmp, file)
    return result
  } finally {
    fs.rmdirSync(lock)
  }
}

const attempt = <A>(options: FileRunnerStorageOptions, what: string, change: (state: RunnerRecords) => A): Effect.Effect<A, PersistenceError> =>
  Effect.try({
    try: () => withState(options, change),
    catch: (cause) =>
      new PersistenceError({ cause: new Error(`runner storage in ${options.dir}: ${what} failed: ${cause instanceof Error ? cause.message : String(cause)}`) }),
  })

/**
 * Remove a runner known to be dead (its process exited) and free its shard locks at
 * once. The engine would find out by pinging it from another runner, which takes
 * the ping's retries and timeouts; the parent of a local runner process knows
 * sooner, as a Kubernetes health check would from the pod's status.
 *
 * @example
 * forgetRunner({ dir, lockExpirationMs: 3000 }, "127.0.0.1:34001")
 */
export const forgetRunner = (options: FileRunnerStorageOptions, address: string): void => withState(options, (state) => forgetRunnerIn(state, address))

/**
 * A `RunnerStorage` shared by the processes of one machine through a file.
 *
 * @example
 * NodeClusterSocket.layer({ storage: "byo" }).pipe(Layer.provide(fileRunnerStorage({ dir: "runs/x/cluster", lockExpirationMs: 3000 })))
 */
export const fileRunnerStorage = (options: FileRunnerStorageOptions): Layer.Layer<RunnerStorage> =>
  Layer.succeed(
    RunnerStorage,
    RunnerStorage.of(RunnerStorageModule.makeEncoded(runnerStorageOps((what, change) => attempt(options, what, change), options.lockExpirationMs))),
  )
