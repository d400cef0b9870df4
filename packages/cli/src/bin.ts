/** The `turnwise` executable: the command tree with the process's streams. */
import { writeSync } from "node:fs"
import { Effect, Layer } from "effect"
import { runCli } from "./Cli.js"
import { cliPlatform } from "./commands/platform.js"
import { CommandIo } from "./io.js"

// When the event loop empties while the command is still awaited, work was left waiting
// on something that can no longer happen, and Node exits with 13 without a word. Say so,
// so that such an exit is never mistaken for a result.
let finished = false
process.on("exit", () => {
  if (!finished) writeSync(2, "turnwise: internal error: the command stopped while waiting for work that can no longer finish\n")
})

process.exitCode = await Effect.runPromise(runCli(process.argv.slice(2)).pipe(Effect.provide(Layer.merge(cliPlatform, CommandIo.layerNode))))
finished = true
