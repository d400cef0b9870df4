/**
 * Python guests in Pyodide, loaded once per worker.
 *
 * Loading Pyodide takes seconds, so a worker keeps one interpreter and switches the
 * state it holds (contexts.ts): a fresh call starts from the pristine interpreter and
 * everything it changed is discarded when it returns, by copying the pristine
 * WebAssembly heap back (heap-image.ts) and dropping its files and descriptors
 * (guest-files.ts); a session's state is saved when another call takes the worker and
 * loaded again for its next call. Nothing a call does, in Python objects or inside C
 * objects, reaches another call. The final expression's `repr` is reported like a REPL
 * would.
 *
 * Isolation, in layers:
 * - Python: `js`, `pyodide_js`, `pyodide`, `_pyodide` and `_pyodide_core` are
 *   removed from `sys.modules` and a meta-path finder refuses to import them again;
 *   `_ctypes` and `_pyodide_core` are also taken out of CPython's table of built-in
 *   modules (builtin-table.ts), so removing the finder does not bring them back;
 *   Pyodide's own JS import finder is removed; `os.environ` is emptied.
 * - JavaScript realm of the worker (in case a guest still reaches a JS proxy, e.g.
 *   through `gc`): the `js` module is an empty object instead of `globalThis`; the
 *   constructors of every function kind throw (no `Function("return process")`);
 *   `eval`, NODEFS, `FS.mount`, package loading and Node's module-loading hooks of
 *   `process` are gone; timers never fire, so asyncio callbacks a guest schedules
 *   cannot run between calls. The worker itself starts with an empty `process.env`.
 * - Filesystem: Pyodide's in-memory FS only (NODEFS is never mounted), writable only in
 *   /home/pyodide and /tmp.
 * - Memory: a ceiling on the WebAssembly heap (heap-ceiling.ts) refuses to grow it past
 *   the call's limit, so the allocation fails inside Python with `MemoryError`. The
 *   guest's files live in JavaScript memory outside that heap; they share the same limit
 *   (guest-files.ts): a write past it fails with `OSError` (`EDQUOT`, "Disk quota
 *   exceeded"), and a call that fails after that is reported as kind "memory".
 * - Time: the host sets the interrupt flag at the deadline (`KeyboardInterrupt`)
 *   and terminates the worker after a grace period if that did not stop the guest;
 *   standard output is line-buffered into memory shared with the host, so the lines
 *   printed before that are kept.
 *
 * @category constructors
 */
import NodeModule, { createRequire } from "node:module"
import { dirname } from "node:path"
import { loadPyodide } from "pyodide"
import { removeBuiltinModules } from "./builtin-table.js"
import { contextSwitcher } from "./contexts.js"
import type { Cell, Engine } from "./engine.js"
import { guestFiles } from "./guest-files.js"
import type { EmscriptenFs } from "./guest-files.js"
import { installHeapCeiling } from "./heap-ceiling.js"
import { heapImages } from "./heap-image.js"
import { capText } from "./observation.js"
import type { FailureKind, OutputCapture } from "./observation.js"
import type { GuestOutcome } from "./protocol.js"
import { driverSource } from "./pyodide-driver.js"

/** A function that throws, put where code generation or host access used to be. */
const blocked = function blocked(): never {
  throw new TypeError("not available in the sandbox")
}

/** Make every function constructor throw, so a JS proxy cannot be turned into host code. */
const lockDownRealm = (): void => {
  const prototypes = [
    Function.prototype,
    Object.getPrototypeOf(async function() {}),
    Object.getPrototypeOf(function*() {}),
    Object.getPrototypeOf(async function*() {}),
  ]
  for (const proto of prototypes) {
    Object.defineProperty(proto, "constructor", { value: blocked, writable: false, configurable: false })
  }
  Object.defineProperty(globalThis, "eval", { value: blocked, writable: false, configurable: false })
  // No route from a guest to `process` is known (the tests hunt for one); in case one
  // appears, what would reach host files, the environment, other processes or native
  // code is gone from it.
  const hostDoors = [
    "binding",
    "_linkedBinding",
    "dlopen",
    "getBuiltinModule",
    "reallyExit",
    "kill",
    "_kill",
    "chdir",
    "loadEnvFile",
    "openStdin",
    "_debugProcess",
    "_debugEnd",
    "_rawDebug",
    "setSourceMapsEnabled",
    "abort",
  ]
  for (const key of hostDoors) {
    if (key in process) Reflect.set(process, key, blocked)
  }
  // process.report writes diagnostic reports to disk, with the host's environment in them.
  Object.defineProperty(process, "report", { value: undefined, writable: false, configurable: false })
  // Pyodide's asyncio loop schedules guest callbacks (call_soon, call_later, tasks) with
  // these timers. A call runs synchronously, so they could only run between calls: after
  // the interpreter was restored, with nobody's output, able to wedge the worker before
  // the next call. They are dropped; a guest runs only inside its call.
  for (const key of ["setTimeout", "setInterval", "setImmediate"]) {
    Object.defineProperty(globalThis, key, { value: dropCallback, writable: false, configurable: false })
  }
}

/** A timer that never fires (see lockDownRealm). */
const dropCallback = (): number => 0

/**
 * Load Pyodide, harden it, and return an engine.
 *
 * @example
 * const engine = await pyodideEngine({ output: OutputCapture.shared(65536), outputLimitBytes: 65536, pythonRecursionLimit: 1000, interrupt })
 * engine.run({ code: "1+2", session: null, timeoutMs: 1000, memoryMb: 64 }) // value "3"
 */
export const pyodideEngine = async (options: {
  /** Where the guest's stdout and stderr go (shared with the host). */
  readonly output: OutputCapture
  readonly outputLimitBytes: number
  readonly pythonRecursionLimit: number
  readonly interrupt: SharedArrayBuffer
}): Promise<Engine> => {
  const ceiling = installHeapCeiling()
  const output = options.output
  const interrupt = new Int32Array(options.interrupt)
  const jsGlobals: object = Object.create(null)
  // Pyodide guesses its own location from a stack trace, which a TypeScript loader can skew; name it.
  const indexURL = dirname(createRequire(import.meta.url).resolve("pyodide/package.json")) + "/"
  const pyodide = await loadPyodide({ indexURL, jsglobals: jsGlobals, env: {}, stdout: () => undefined, stderr: () => undefined })
  const write = { write: (buffer: Uint8Array): number => (output.write(buffer), buffer.length) }
  pyodide.setStdout(write)
  pyodide.setStderr(write)
  pyodide.setInterruptBuffer(interrupt)
  pyodide.setStdin({ error: true }) // input() fails instead of reading the host's stdin

  const driver = pyodide.toPy({ _RECURSION: options.pythonRecursionLimit }) as { get(key: string): unknown; destroy(): void }
  pyodide.runPython(driverSource, { globals: driver as never })
  const runCell = driver.get("run_cell") as (code: string, session: string | undefined, newState: boolean) => string

  // Cut the routes from a JS proxy to the host filesystem and to code generation.
  const fs = pyodide.FS as { filesystems: Record<string, unknown>; mount: unknown }
  delete fs.filesystems["NODEFS"]
  fs.mount = blocked
  for (const key of ["loadPackage", "loadPackagesFromImports", "mountNodeFS", "mountNativeFS", "runPythonAsync", "pyimport"]) {
    Reflect.set(pyodide, key, blocked)
  }
  const module: unknown = Reflect.get(pyodide, "_module")
  if (typeof module !== "object" || module === null) throw new Error("pyodide: the emscripten module is not reachable")
  Reflect.set(module, "NODEFS", undefined)
  // Pyodide's Node glue calls require("child_process") for system(), require("ws") for
  // sockets and require("fs") for NODEFS at call time, both through its CommonJS module's
  // require and through a global one. After loading, only crypto (random numbers) resolves.
  const allowed = new Set(["crypto", "node:crypto"])
  const denied = (name: string): Error => new Error(`module "${name}" is not available in the sandbox`)
  const moduleRequire: unknown = Reflect.get(NodeModule.prototype, "require")
  if (typeof moduleRequire !== "function") throw new Error("pyodide: Module.prototype.require is missing")
  Reflect.set(NodeModule.prototype, "require", function(this: unknown, name: string): unknown {
    if (!allowed.has(name)) throw denied(name)
    return Reflect.apply(moduleRequire, this, [name])
  })
  const globalRequire: unknown = Reflect.get(globalThis, "require")
  Reflect.set(globalThis, "require", (name: string): unknown => {
    if (!allowed.has(name) || typeof globalRequire !== "function") throw denied(name)
    return Reflect.apply(globalRequire, undefined, [name])
  })
  lockDownRealm()

  /** The interpreter's heap (a new view after each growth). */
  const bytes = (): Uint8Array => {
    const heap: unknown = Reflect.get(module, "HEAPU8")
    if (!(heap instanceof Uint8Array)) throw new Error("pyodide: the emscripten heap is not reachable")
    return heap
  }
  const sbrk: unknown = Reflect.get(module, "_sbrk")
  const stackPointer: unknown = Reflect.get(module, "___stack_pointer")
  if (typeof sbrk !== "function" || !(stackPointer instanceof WebAssembly.Global)) throw new Error("pyodide: sbrk or the stack pointer is not reachable")
  const brk = (): number => sbrk(0) as number
  const memory = (): number => bytes().byteLength
  const mib = 1024 * 1024

  // No ctypes, and no bridge module, whatever a guest does to the import system.
  const builtinNames = (pyodide.runPython("import sys; ','.join(sys.builtin_module_names)") as string).split(",")
  removeBuiltinModules(bytes(), brk(), builtinNames, ["_ctypes", "_pyodide_core"])
  ;(driver.get("forget_builtin_copies") as (name: string) => number)("_pyodide_core")
  // One call first, so that what the first call initialises lazily is part of the pristine state.
  runCell("import gc\ngc.collect()", undefined, true)
  const files = guestFiles(pyodide.FS as EmscriptenFs)
  // Saved sessions are held in this worker's memory: at most 1 GiB of them (see SwitcherOptions).
  const contexts = contextSwitcher([heapImages({ bytes, brk, stackPointer }), files], { maxSavedBytes: 1024 ** 3 })
  const baseline = memory()
  const baselineBrk = brk()

  /** The call whose state {@link afterCall} discards (fresh) or keeps (session). */
  let finished: string | null | undefined = undefined
  const afterCall = (): void => {
    if (finished !== undefined) contexts.leave(finished)
    finished = undefined
  }

  const run = (cell: Cell): { outcome: GuestOutcome; retire: boolean } => {
    afterCall() // in case the worker loop did not (an engine used directly)
    output.reset()
    Atomics.store(interrupt, 0, 0) // a deadline that fired as the previous call returned
    let answer: string
    try {
      const newState = contexts.enter(cell.session)
      // Heap and files share the call's limit: each side's room is what the other leaves.
      const limitBytes = cell.memoryMb * mib
      ceiling.lower(baseline + limitBytes, files.quota.usedBytes)
      files.quota.limit(() => limitBytes - Math.max(0, brk() - baselineBrk))
      // undefined, not null: Pyodide turns JS null into `jsnull`, which is not Python's None.
      answer = runCell(cell.code, cell.session ?? undefined, newState)
      ceiling.lift()
      files.quota.lift()
      finished = cell.session
    } catch (cause) {
      // The interpreter itself failed (e.g. a fatal error): report it and retire the worker.
      ceiling.lift()
      files.quota.lift()
      const message = cause instanceof Error ? cause.message : String(cause)
      return { outcome: { ok: false, kind: "crash", error: `Interpreter failure: ${message.slice(-2000)}`, stdout: output.text() }, retire: true }
    }
    // A guest that closed or replaced its standard streams spoils the worker for its session.
    const closed = answer.startsWith("closed\n")
    if (closed) answer = answer.slice("closed\n".length)
    const split = answer.indexOf("\n")
    const status = answer.slice(0, split)
    const payload = answer.slice(split + 1)
    const stdout = output.text()
    // Memory never shrinks: a heap grown far above the limit is returned to the OS by replacing the worker.
    const retire = closed || !files.intact() || memory() > baseline + 2 * 1024 * 1024 * 1024
    if (status === "ok") return { outcome: { ok: true, stdout, value: null }, retire }
    if (status === "value") return { outcome: { ok: true, stdout, value: capText(payload, options.outputLimitBytes) }, retire }
    // A write refused by the file quota, then a failure: the guest ran out of memory, whatever it raised.
    const quotaHit = files.quota.refused() && status === "error"
    const kind: FailureKind = status === "timeout" || status === "memory" ? status : quotaHit ? "memory" : "error"
    const error = quotaHit ? `${payload}\n(the sandbox's files count against the call's memory limit of ${cell.memoryMb} MB, together with its heap)` : payload
    return { outcome: { ok: false, kind, error: capText(error, options.outputLimitBytes), stdout }, retire }
  }

  return {
    run,
    closeSession: (session) => {
      afterCall()
      contexts.close(session)
    },
    afterCall,
  }
}
