/**
 * The platform services effect/cli's runner asks for. Turnwise's commands take
 * their flags as plain strings, never prompt, and do their own file and process work
 * in the run code, so the runner gets stand-ins: the real path functions, and file
 * system, terminal, process and stdio services that fail loudly if a future flag
 * starts using them (give that flag the real Node service then).
 *
 * @category layers
 */
import { Effect, FileSystem, Layer, Path, Stdio, Terminal } from "effect"
import type { Command } from "effect/cli"
import { ChildProcessSpawner } from "effect/process"

const unused = (what: string) => Effect.die(new Error(`turnwise's command line does not use ${what}`))

/**
 * Everything `Command.runWith` requires.
 *
 * @example
 * Command.runWith(cli, { version })(argv).pipe(Effect.provide(cliPlatform))
 *
 * @category layers
 */
export const cliPlatform: Layer.Layer<Command.Environment> = Layer.mergeAll(
  FileSystem.layerNoop({}),
  Path.layer,
  Stdio.layerTest({}),
  Layer.succeed(
    Terminal.Terminal,
    Terminal.make({
      columns: Effect.succeed(100),
      rows: Effect.succeed(40),
      size: unused("the terminal size"),
      readInput: unused("terminal input"),
      readLine: unused("terminal input"),
      display: () => unused("the terminal display"),
    }),
  ),
  Layer.succeed(ChildProcessSpawner.ChildProcessSpawner, ChildProcessSpawner.make(() => unused("child processes"))),
)
