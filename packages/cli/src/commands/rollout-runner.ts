/**
 * `turnwise runner --join HOST:PORT`: a rollout runner on this machine for a learner
 * on another, started with `--set cluster.listen=HOST:PORT` (docs/CLUSTER.md). It
 * takes everything else from the learner, serves until the learner's run ends or it
 * is stopped (SIGINT, SIGTERM), and then leaves the cluster.
 *
 * @category constructors
 */
import * as os from "node:os"
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { freePort, joinCluster, parseHostPort } from "@turnwise/cluster"
import { setBackend } from "@turnwise/runtime"
import { CommandIo } from "../io.js"
import { attempt, CommandFailed } from "./CommandFailed.js"
import { intAtLeast } from "./flags.js"
import { withUsage } from "./usage.js"

/** The first external IPv4 address of this machine, else loopback. */
const defaultHost = (): string => {
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === "IPv4" && !address.internal) return address.address
  }
  return "127.0.0.1"
}

/** Resolves on the first SIGINT or SIGTERM. */
const stopSignal = (): Effect.Effect<string> =>
  Effect.callback<string>((resume) => {
    const stop = (signal: NodeJS.Signals) => resume(Effect.succeed(`stopped by ${signal}`))
    process.once("SIGINT", stop)
    process.once("SIGTERM", stop)
    return Effect.sync(() => {
      process.off("SIGINT", stop)
      process.off("SIGTERM", stop)
    })
  })

/** The `runner` command. */
export const rolloutRunner = Command.make(
  "runner",
  {
    join: Flag.String("join").pipe(
      Flag.withMetavar("host:port"),
      Flag.withDescription("The learner's coordinator (its cluster.listen), as this machine reaches it"),
    ),
    host: Flag.String("host").pipe(
      Flag.withMetavar("host"),
      Flag.withDescription("This runner's address as the learner reaches it (default: this machine's first external IPv4 address)"),
      Flag.optional,
    ),
    port: intAtLeast("port", 0).pipe(Flag.withDescription("The port this runner serves on (default 0: a free one)"), Flag.withDefault(0)),
    listenHost: Flag.String("listen-host").pipe(
      Flag.withMetavar("host"),
      Flag.withDescription("The interface to bind (default 0.0.0.0: every interface)"),
      Flag.withDefault("0.0.0.0"),
    ),
    wait: intAtLeast("wait", 1).pipe(
      Flag.withDescription("Seconds to keep trying to reach the learner at start (default 120)"),
      Flag.withDefault(120),
    ),
    sandboxWorkers: intAtLeast("sandbox-workers", 1).pipe(
      Flag.withDescription("Sandbox worker threads of this runner (default: the learner's sandboxWorkers)"),
      Flag.optional,
    ),
  },
  Effect.fn("turnwise.runner")(function*(flags) {
    const io = yield* CommandIo
    const coordinator = yield* attempt(async () => parseHostPort(flags.join, "--join"))
    const host = flags.host._tag === "Some" ? flags.host.value : defaultHost()
    const port = flags.port === 0 ? yield* attempt(() => freePort(flags.listenHost)) : flags.port
    yield* attempt(() => setBackend("wasm"))
    const ended = yield* Effect.raceFirst(
      joinCluster({
        coordinator,
        advertise: { host, port },
        listenHost: flags.listenHost,
        connectSeconds: flags.wait,
        ...(flags.sandboxWorkers._tag === "Some" ? { sandboxWorkers: flags.sandboxWorkers.value } : {}),
        onServing: (address) => io.log(`runner ${address} joined the coordinator at ${flags.join}`),
      }).pipe(Effect.mapError((error) => new CommandFailed({ cause: error }))),
      stopSignal(),
    )
    io.log(`runner ${host}:${port}: ${ended}; left the cluster`)
  }),
).pipe(
  Command.withDescription("Roll out for a learner on another machine (started with --set cluster.listen=HOST:PORT); runs until that run ends"),
  withUsage({ synopsis: "turnwise runner --join host:port [--host h] [--port n] [--listen-host h] [--wait s] [--sandbox-workers n]" }),
)
