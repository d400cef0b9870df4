/**
 * A runner process: joins the cluster of a run over a socket and serves
 * {@link RolloutWorker} entities until it is stopped. Started by
 * {@link startLocalRunners} with its settings as JSON in TURNWISE_RUNNER_SPEC.
 *
 * `dieAtStep` is fault injection for tests: the first runner (of all those given the
 * same `dieMarker`) to accept a prompt of that step or a later one kills itself with
 * SIGKILL, so exactly one runner dies in the middle of a step, without any timing.
 */
import * as fs from "node:fs"
import { Effect, Layer, Option, Schema } from "effect"
import * as RunnerAddress from "effect/cluster/RunnerAddress"
import { NodeClusterSocket } from "@effect/platform-node"
import { setBackend } from "@turnwise/runtime"
import { rolloutWorkerLayer } from "./rolloutHandler.js"
import { shardingSettings, storageLayer } from "./ClusterSettings.js"
import { WorkerPolicy } from "./WorkerPolicy.js"

/** What a runner process is told at start. */
export const RunnerSpec = Schema.Struct({
  port: Schema.Number,
  storageDir: Schema.String,
  weightsDir: Schema.String,
  model: Schema.Unknown,
  optimizer: Schema.Unknown,
  sandboxWorkers: Schema.Number,
  dieAtStep: Schema.optional(Schema.Number),
  dieMarker: Schema.optional(Schema.String),
})
export type RunnerSpec = typeof RunnerSpec.Type

/** True for the one process that creates the marker directory (mkdir is atomic). */
const claim = (marker: string, what: { readonly step: number; readonly index: number; readonly port: number }): boolean => {
  try {
    fs.mkdirSync(marker)
    fs.writeFileSync(`${marker}/claimed.json`, JSON.stringify(what))
    return true
  } catch {
    return false
  }
}

const main = Effect.gen(function*() {
  const spec = yield* Schema.decodeUnknownEffect(RunnerSpec)(JSON.parse(process.env["TURNWISE_RUNNER_SPEC"] ?? "null"))
  yield* Effect.promise(() => setBackend("wasm"))
  const address = RunnerAddress.make("127.0.0.1", spec.port)
  const sharding = NodeClusterSocket.layer({
    storage: "byo",
    shardingConfig: { ...shardingSettings, runnerAddress: Option.some(address) },
  }).pipe(Layer.provide(storageLayer(spec)))
  const workers = rolloutWorkerLayer({
    runner: `127.0.0.1:${spec.port}`,
    ...(spec.dieAtStep === undefined
      ? {}
      : {
        onAccept: (
          what: { readonly step: number; readonly index: number },
        ) => (what.step >= spec.dieAtStep! && claim(spec.dieMarker!, { ...what, port: spec.port }) ? process.kill(process.pid, "SIGKILL") : undefined),
      }),
  }).pipe(
    Layer.provide(
      WorkerPolicy.layer({ model: spec.model, optimizer: spec.optimizer as never, weightsDir: spec.weightsDir, sandboxWorkers: spec.sandboxWorkers }),
    ),
    Layer.provide(sharding),
  )
  return yield* Layer.launch(workers)
})

Effect.runFork(main.pipe(Effect.tapCause((cause) => Effect.sync(() => console.error(`runner failed: ${String(cause)}`)))))
