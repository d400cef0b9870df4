/** The `turnwise` executable: the command tree with the process's streams. */
import { Effect, Layer } from "effect"
import { runCli } from "./Cli.js"
import { cliPlatform } from "./commands/platform.js"
import { CommandIo } from "./io.js"

process.exitCode = await Effect.runPromise(runCli(process.argv.slice(2)).pipe(Effect.provide(Layer.merge(cliPlatform, CommandIo.layerNode))))
