/**
 * Entry point of a sandbox worker thread: load one interpreter, then run cells.
 *
 * The pool starts this file in a `worker_threads` Worker with an empty environment
 * and resource limits. Cells arrive one at a time and run synchronously, so a guest
 * that never yields blocks only this thread; the host enforces the deadline from
 * outside. A failure to load the interpreter is reported as `start-failed`.
 *
 * @category constructors
 */
import { parentPort, workerData } from "node:worker_threads"
import type { Engine } from "./engine.js"
import { OutputCapture } from "./observation.js"
import type { HostMessage, WorkerInit, WorkerMessage } from "./protocol.js"

const port = parentPort
if (port === null) throw new Error("sandbox worker.ts must run inside a worker thread")
const init = workerData as WorkerInit
const send = (message: WorkerMessage): void => port.postMessage(message)
const output = new OutputCapture(init.output)

const load = async (): Promise<Engine> => {
  if (init.language === "js") {
    const { quickJsEngine } = await import("./quickjs.js")
    return quickJsEngine({ output, outputLimitBytes: init.outputLimitBytes, jsStackBytes: init.jsStackBytes })
  }
  const { pyodideEngine } = await import("./pyodide.js")
  return pyodideEngine({
    output,
    outputLimitBytes: init.outputLimitBytes,
    pythonRecursionLimit: init.pythonRecursionLimit,
    interrupt: init.interrupt,
  })
}

load().then(
  (engine) => {
    port.on("message", (message: HostMessage) => {
      if (message.type === "close-session") {
        engine.closeSession(message.session)
        return
      }
      const { outcome, retire } = engine.run({
        code: message.code,
        session: message.session,
        timeoutMs: message.timeoutMs,
        memoryMb: message.memoryMb,
      })
      send({ type: "result", id: message.id, outcome, retire })
      engine.afterCall?.()
    })
    send({ type: "ready" })
  },
  (cause: unknown) => send({ type: "start-failed", error: cause instanceof Error ? (cause.stack ?? cause.message) : String(cause) }),
)
