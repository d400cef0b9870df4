/**
 * The learner's coordinator, for runners on other machines.
 *
 * Local runners share the run directory with the learner: runner membership lives in
 * a file there ({@link fileRunnerStorage}) and policy versions are files there. A
 * runner on another machine shares nothing but the network, so the learner serves
 * both over one socket, as an Effect RPC group ({@link CoordinatorRpcs}):
 *
 * - the engine's `RunnerStorage` operations (register, health, shard locks), kept in
 *   the learner's memory: the learner is the one process every run has, and a run's
 *   membership ends with it, so no database server is needed;
 * - what a runner must know to build its policy copy (model configuration, optimizer
 *   section, sandbox pool size), so a runner is started with the learner's address
 *   and nothing else;
 * - the bytes of each published policy version, fetched by number.
 *
 * Prompts and groups do not pass through the coordinator: they travel between the
 * learner's `Sharding` client and the runners' own sockets, as in the local case.
 * A runner that cannot reach the coordinator any more takes its learner for gone
 * and stops ({@link joinCluster}).
 *
 * @category layers
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Context, Data, Effect, Layer, Schedule, Schema } from "effect"
import type { Scope } from "effect"
import { PersistenceError } from "effect/cluster/ClusterError"
import * as MessageStorage from "effect/cluster/MessageStorage"
import { RunnerStorage } from "effect/cluster/RunnerStorage"
import * as RunnerStorageModule from "effect/cluster/RunnerStorage"
import { Rpc, RpcClient, RpcGroup, RpcSerialization, RpcServer } from "effect/rpc"
import type { RpcClientError } from "effect/rpc/RpcClientError"
import type { SocketError } from "effect/socket/Socket"
import { SocketServer } from "effect/socket/SocketServer"
import { NodeSocket, NodeSocketServer } from "@effect/platform-node"
import { readVersionFile } from "./PolicyVersions.js"
import { emptyRunnerRecords, forgetRunnerIn, runnerStorageOps } from "./RunnerRecords.js"
import type { RunnerRecords } from "./RunnerRecords.js"

/** A host and port, as `HOST:PORT` on the command line. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/** A `HOST:PORT` that is not one. */
export class HostPortError extends Data.TaggedError("HostPortError")<{ readonly where: string; readonly text: string }> {
  override get message(): string {
    return `${this.where}: "${this.text}" is not HOST:PORT (a host name or address, a colon, and a port from 0 to 65535)`
  }
}

/** `HOST:PORT`, or `[IPv6]:PORT`: groups 1 or 2 the host, group 3 the port (its range is checked by {@link parseHostPort}). */
export const hostPortPattern = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/

/**
 * Read `HOST:PORT` (an IPv6 address in brackets: `[::1]:7400`); `where` names the setting in errors.
 *
 * @example
 * parseHostPort("10.0.0.5:7400", "--join") // { host: "10.0.0.5", port: 7400 }
 */
export const parseHostPort = (text: string, where: string): HostPort => {
  const match = hostPortPattern.exec(text.trim())
  const port = Number(match?.[3])
  if (match === null || !(port <= 65535)) throw new HostPortError({ where, text })
  return { host: match[1] ?? match[2]!, port }
}

/** `HOST:PORT` of an address (brackets around an IPv6 host). */
export const formatHostPort = (
  address: HostPort,
): string => (address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`)

/** A coordinator operation failed on the learner; the message says which and why. */
export class CoordinatorError extends Schema.TaggedError<CoordinatorError>()("CoordinatorError", {
  operation: Schema.String,
  problem: Schema.String,
}) {
  override get message(): string {
    return `coordinator: ${this.operation} failed: ${this.problem}`
  }
}

const Address = Schema.String
const ShardIds = Schema.Array(Schema.String)

/** What a runner needs to build its policy copy, as the learner sends it. */
export const JoinSettings = Schema.Struct({
  /** The learner's model configuration (JSON), so published weights fit the copy. */
  model: Schema.Unknown,
  /** The recipe's optimizer section (JSON); the copy never trains, the runtime wants one. */
  optimizer: Schema.Unknown,
  /** The learner's sandbox pool size, the default of a runner's own. */
  sandboxWorkers: Schema.Int,
})
export type JoinSettings = typeof JoinSettings.Type

/** The coordinator's protocol: the engine's runner storage, the join settings, and policy versions by number. */
export const CoordinatorRpcs = RpcGroup.make(
  Rpc.make("GetRunners", { success: Schema.Array(Schema.Tuple([Schema.String, Schema.Boolean])), error: CoordinatorError }),
  Rpc.make("Register", { payload: { address: Address, runner: Schema.String, healthy: Schema.Boolean }, success: Schema.Number, error: CoordinatorError }),
  Rpc.make("Unregister", { payload: { address: Address }, error: CoordinatorError }),
  Rpc.make("SetRunnerHealth", { payload: { address: Address, healthy: Schema.Boolean }, error: CoordinatorError }),
  Rpc.make("Acquire", { payload: { address: Address, shardIds: ShardIds }, success: ShardIds, error: CoordinatorError }),
  Rpc.make("Refresh", { payload: { address: Address, shardIds: ShardIds }, success: ShardIds, error: CoordinatorError }),
  Rpc.make("Release", { payload: { address: Address, shardId: Schema.String }, error: CoordinatorError }),
  Rpc.make("ReleaseAll", { payload: { address: Address }, error: CoordinatorError }),
  Rpc.make("JoinSettings", { success: Schema.String }),
  Rpc.make("PolicyWeights", { payload: { version: Schema.Int }, success: Schema.Uint8Array, error: CoordinatorError }),
)

/** Fewer runners joined than the run waits for. */
export class RunnersJoinError extends Data.TaggedError("RunnersJoinError")<{
  readonly joined: number
  readonly expected: number
  readonly seconds: number
  readonly listen: string
}> {
  override get message(): string {
    return `${this.joined} of ${this.expected} runners joined the coordinator at ${this.listen} within ${this.seconds} s; start each one with \`turnwise runner --join <this machine's address>:${
      this.listen.split(":").pop()
    }\` on its machine`
  }
}

/** The learner's side of the coordinator. */
export interface CoordinatorShape {
  /** Where it listens (the port it was given, or the one picked for port 0). */
  readonly address: HostPort
  /** The addresses of the runners registered now. */
  readonly runners: Effect.Effect<ReadonlyArray<string>>
  /** Wait until at least `count` runners are registered, for at most `seconds`. */
  readonly awaitRunners: (count: number, seconds: number) => Effect.Effect<ReadonlyArray<string>, RunnersJoinError>
}

/** Options of {@link Coordinator.layer}. */
export interface CoordinatorOptions {
  /** Where to listen; port 0 picks a free one. Bind `0.0.0.0` (or a network address) to reach other machines. */
  readonly listen: HostPort
  /** Where the learner publishes policy versions (served by number). */
  readonly weightsDir: string
  readonly settings: JoinSettings
  /** How long an unrefreshed shard lock keeps its owner. */
  readonly lockExpirationMs: number
}

// Policy versions travel as one frame each: no frame limit (a 100M-parameter model is 400 MB in F32).
const serialization = RpcSerialization.layerSchemaBinary({ maxFrameSize: "unbounded" })

const failed = (operation: string) => (cause: unknown) => new CoordinatorError({ operation, problem: cause instanceof Error ? cause.message : String(cause) })

/**
 * Serve the coordinator's protocol on `options.listen` until the scope closes; succeeds
 * with the port it bound. Runs in the coordinator's own process (coordinator-main.ts).
 *
 * @example
 * const port = yield* serveCoordinator({ listen: { host: "0.0.0.0", port: 7400 }, weightsDir, settings, lockExpirationMs: 3000 })
 */
export const serveCoordinator = (options: CoordinatorOptions): Effect.Effect<number, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const records: RunnerRecords = emptyRunnerRecords()
    // One JavaScript thread runs every operation to its end: the records need no lock.
    const ops = runnerStorageOps((_what, change) => Effect.sync(() => change(records)), options.lockExpirationMs)
    const settingsJson = JSON.stringify(options.settings)
    // A runner's connection closes when its process dies (the kernel resets it), long before
    // the engine's own health check could tell, and that check runs on a runner, which may be
    // the dead one. So the runners a connection registered are forgotten when it closes,
    // which frees their shards at once, as a local runner's parent does on its exit.
    const registeredBy = new Map<number, ReadonlyArray<string>>()
    const onDisconnect = (clientId: number) =>
      Effect.sync(() => {
        for (const address of registeredBy.get(clientId) ?? []) forgetRunnerIn(records, address)
        registeredBy.delete(clientId)
      })
    const storageCall = <A>(operation: string, effect: Effect.Effect<A, PersistenceError>) => Effect.mapError(effect, failed(operation))
    const handlers = CoordinatorRpcs.toLayer({
      GetRunners: () => storageCall("GetRunners", ops.getRunners),
      Register: ({ address, runner, healthy }, { client }) =>
        storageCall("Register", ops.register(address, runner, healthy)).pipe(
          Effect.tap(() => Effect.sync(() => registeredBy.set(client.id, [...(registeredBy.get(client.id) ?? []), address]))),
        ),
      Unregister: ({ address }) => storageCall("Unregister", ops.unregister(address)),
      SetRunnerHealth: ({ address, healthy }) => storageCall("SetRunnerHealth", ops.setRunnerHealth(address, healthy)),
      Acquire: ({ address, shardIds }) =>
        shardIds.length === 0 ? Effect.succeed([]) : storageCall("Acquire", ops.acquire(address, [shardIds[0]!, ...shardIds.slice(1)])),
      Refresh: ({ address, shardIds }) => storageCall("Refresh", Effect.map(ops.refresh(address, [...shardIds]), (ids) => [...ids])),
      Release: ({ address, shardId }) => storageCall("Release", ops.release(address, shardId)),
      ReleaseAll: ({ address }) => storageCall("ReleaseAll", ops.releaseAll(address)),
      JoinSettings: () => Effect.succeed(settingsJson),
      PolicyWeights: ({ version }) =>
        Effect.tryPromise({ try: () => readVersionFile(options.weightsDir, version), catch: failed(`PolicyWeights(${version})`) }),
    })
    const socket = yield* Layer.build(NodeSocketServer.layer({ host: options.listen.host, port: options.listen.port }))
    const bound = Context.get(socket, SocketServer).address
    yield* Layer.build(
      RpcServer.layer(CoordinatorRpcs, { concurrency: "unbounded", onDisconnect }).pipe(
        Layer.provide(handlers),
        Layer.provide(RpcServer.layerProtocolSocketServer),
        Layer.provide(Layer.succeedContext(socket)),
        Layer.provide(serialization),
      ),
    )
    return bound._tag === "UnixPathAddress" ? options.listen.port : bound.port
  })

/**
 * @example
 * Effect.gen(function* () { const coordinator = yield* Coordinator; yield* coordinator.awaitRunners(2, 600) })
 */
export class Coordinator extends Context.Service<Coordinator, CoordinatorShape>()("turnwise/cluster/Coordinator") {
  /**
   * Start the coordinator in a process of its own (see coordinator-main.ts), and give
   * this process the runner storage it serves (with no message storage: prompts are
   * volatile, as in the local case). The coordinator stops with the scope, or when
   * this process dies.
   *
   * Its own process, because the learner's thread is busy for seconds at a time while
   * it trains, and the runners' shard locks must be refreshed every half second.
   */
  static layer(options: CoordinatorOptions): Layer.Layer<Coordinator | RunnerStorage | MessageStorage.MessageStorage, CoordinatorStartError> {
    const core = Layer.effectContext(
      Effect.gen(function*() {
        const port = yield* startCoordinatorProcess(options)
        const address: HostPort = { host: options.listen.host, port }
        // A coordinator listening on every interface is reached here through loopback.
        const local: HostPort = { host: ["0.0.0.0", "::", ""].includes(options.listen.host) ? "127.0.0.1" : options.listen.host, port }
        const where = formatHostPort(address)
        const client = yield* coordinatorClient(local).pipe(
          Effect.mapError((error) => new CoordinatorStartError({ listen: where, problem: `cannot connect to it: ${error.message}` })),
        )
        const runners = client.GetRunners().pipe(
          Effect.map((rows) => rows.map(([runner]) => runnerAddressOf(runner))),
          Effect.orDie,
        )
        const coordinator = Coordinator.of({
          address,
          runners,
          awaitRunners: (count, seconds) =>
            runners.pipe(
              Effect.flatMap((joined) =>
                joined.length >= count
                  ? Effect.succeed(joined)
                  : Effect.fail(new RunnersJoinError({ joined: joined.length, expected: count, seconds, listen: where }))
              ),
              Effect.retry({ schedule: Schedule.spaced("200 millis"), times: Math.ceil((seconds * 1000) / 200) }),
            ),
        })
        const storage = yield* Layer.build(remoteRunnerStorage(client, where))
        return Context.add(storage, Coordinator, coordinator)
      }),
    )
    return Layer.merge(core, MessageStorage.layerNoop)
  }
}

/** `HOST:PORT` of a runner as the engine stores it (JSON with its address). */
const runnerAddressOf = (encoded: string): string => {
  try {
    const { address } = JSON.parse(encoded) as { readonly address: HostPort }
    return formatHostPort(address)
  } catch {
    return encoded
  }
}

/** The coordinator process could not be started. */
export class CoordinatorStartError extends Data.TaggedError("CoordinatorStartError")<{ readonly listen: string; readonly problem: string }> {
  override get message(): string {
    return `coordinator on ${this.listen}: ${this.problem}`
  }
}

const coordinatorMain = path.join(path.dirname(fileURLToPath(import.meta.url)), "coordinator-main.ts")

/** Spawn coordinator-main.ts with the options; resolves with the port it bound, and stops it with the scope. */
const startCoordinatorProcess = (options: CoordinatorOptions): Effect.Effect<number, CoordinatorStartError, Scope.Scope> => {
  const listen = formatHostPort(options.listen)
  return Effect.acquireRelease(
    Effect.tryPromise({
      try: () =>
        new Promise<{ child: ChildProcess; port: number }>((resolve, reject) => {
          // stdin stays open while this process lives: the coordinator exits when it closes.
          const child = spawn(process.execPath, ["--import", "tsx", coordinatorMain], {
            env: { ...process.env, TURNWISE_COORDINATOR_SPEC: JSON.stringify(options) },
            stdio: ["pipe", "pipe", "pipe"],
          })
          let output = ""
          let listening = false
          const onData = (chunk: Buffer) => {
            output += chunk.toString()
            const match = /^listening (\d+)$/m.exec(output)
            if (match !== null) {
              listening = true
              child.stdout.off("data", onData)
              child.stdout.resume()
              resolve({ child, port: Number(match[1]) })
            }
          }
          child.stdout.on("data", onData)
          // Before it listens, its output explains a failure; after, it goes to this process's stderr.
          child.stderr.on("data", (chunk: Buffer) => (listening ? process.stderr.write(`[coordinator] ${chunk.toString()}`) : (output += chunk.toString())))
          child.once("exit", (code, signal) =>
            reject(new Error(`it exited (${signal ?? code}) before listening: ${output.trim().split("\n").slice(-3).join(" | ")}`)))
          child.once("error", reject)
        }),
      catch: (error) => new CoordinatorStartError({ listen, problem: error instanceof Error ? error.message : String(error) }),
    }),
    ({ child }) =>
      Effect.promise(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((resolve) => child.once("exit", resolve))
        child.kill("SIGTERM")
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000).unref())])
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      }),
  ).pipe(Effect.map(({ port }) => port))
}

/** The runner's connection to a coordinator. */
export type CoordinatorClient = RpcClient.FromGroup<typeof CoordinatorRpcs, RpcClientError>

/**
 * Connect to the coordinator at `address` (the connection closes with the scope).
 *
 * @example
 * const client = yield* coordinatorClient({ host: "10.0.0.5", port: 7400 })
 */
export const coordinatorClient = (address: HostPort): Effect.Effect<CoordinatorClient, SocketError, Scope.Scope> =>
  Effect.gen(function*() {
    // Built in the caller's scope: the connection must outlive the making of the client.
    const protocol = yield* Layer.build(
      RpcClient.layerProtocolSocket().pipe(
        Layer.provide(NodeSocket.layerNet({ host: address.host, port: address.port, openTimeout: 5_000 })),
        Layer.provide(serialization),
      ),
    )
    return yield* RpcClient.make(CoordinatorRpcs).pipe(Effect.provideContext(protocol))
  })

/**
 * The engine's runner storage, kept by the coordinator a client reaches. Once `gone`
 * says the coordinator has closed, leaving (unregister, release) succeeds at once.
 *
 * @example
 * NodeClusterSocket.layer({ storage: "byo", ... }).pipe(Layer.provide(remoteRunnerStorage(client, "10.0.0.5:7400")))
 */
export const remoteRunnerStorage = (client: CoordinatorClient, where: string, options: { readonly gone?: () => boolean } = {}): Layer.Layer<RunnerStorage> => {
  const call = <A>(operation: string, effect: Effect.Effect<A, CoordinatorError | RpcClientError>) =>
    Effect.mapError(effect, (error) => new PersistenceError({ cause: new Error(`runner storage at coordinator ${where}: ${operation}: ${error.message}`) }))
  // The records died with the coordinator: leaving needs nothing released (the engine would retry for ever).
  const leave = (operation: string, effect: Effect.Effect<void, CoordinatorError | RpcClientError>) =>
    Effect.suspend(() => (options.gone?.() === true ? Effect.void : call(operation, effect)))
  return Layer.succeed(
    RunnerStorage,
    RunnerStorage.of(RunnerStorageModule.makeEncoded({
      getRunners: call("getRunners", Effect.map(client.GetRunners(), (rows) => rows.map(([runner, healthy]) => [runner, healthy] as const))),
      register: (address, runner, healthy) => call("register", client.Register({ address, runner, healthy })),
      unregister: (address) => leave("unregister", client.Unregister({ address })),
      setRunnerHealth: (address, healthy) => call("setRunnerHealth", client.SetRunnerHealth({ address, healthy })),
      acquire: (address, shardIds) => call("acquire", Effect.map(client.Acquire({ address, shardIds }), (ids) => [...ids])),
      refresh: (address, shardIds) => call("refresh", client.Refresh({ address, shardIds })),
      release: (address, shardId) => leave("release", client.Release({ address, shardId })),
      releaseAll: (address) => leave("releaseAll", client.ReleaseAll({ address })),
    })),
  )
}
