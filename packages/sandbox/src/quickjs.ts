/**
 * JavaScript guests in QuickJS (quickjs-emscripten, release build, synchronous).
 *
 * Every fresh call gets its own QuickJS runtime and context, so nothing survives a
 * call; a session keeps its runtime and context until it is closed. The guest sees
 * only the ECMAScript built-ins and a `console` whose methods write to the capped
 * output: there is no host object in its realm, so `process`, `require`, `fetch` or
 * `this.constructor.constructor("return process")()` find nothing. QuickJS enforces
 * the deadline itself (its interrupt handler raises an uncatchable error) and the
 * stack size (deep recursion raises a catchable "stack overflow"); the host still
 * terminates the worker if the guest somehow outlives the deadline (a long native
 * call such as sorting millions of strings never checks the interrupt). Memory is
 * bounded twice: QuickJS's own limit (which counts allocations, not their bytes) and a
 * ceiling on the worker's WebAssembly heap (see heap-ceiling.ts), which also catches
 * typed arrays and ArrayBuffers; either way allocation fails with "out of memory".
 *
 * @category constructors
 */
import { getQuickJS, shouldInterruptAfterDeadline } from "quickjs-emscripten"
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime } from "quickjs-emscripten"
import type { Cell, Engine } from "./engine.js"
import { installHeapCeiling } from "./heap-ceiling.js"
import { capText } from "./observation.js"
import type { FailureKind, OutputCapture } from "./observation.js"
import type { GuestOutcome } from "./protocol.js"

interface Vm {
  readonly runtime: QuickJSRuntime
  readonly context: QuickJSContext
  /** The in-realm value formatter (see formatValueSource). */
  readonly formatter: QuickJSHandle
  /** Sends what the guest's console holds to the host's output (see consoleSource). */
  readonly drain: QuickJSHandle
}

// Formats the completion value inside the guest realm, like a REPL would, so that
// getters and toJSON run under the guest's own limits rather than on the host.
const formatValueSource = `(v) => {
  if (typeof v === "string") return JSON.stringify(v)
  if (typeof v === "function") return "[Function " + (v.name || "(anonymous)") + "]"
  if (typeof v === "bigint") return v + "n"
  if (typeof v === "symbol" || v === null || typeof v !== "object") return String(v)
  if (v instanceof Error) return String(v)
  try { const s = JSON.stringify(v); return s === undefined ? String(v) : s } catch (e) { return String(v) }
}`

/** Bytes of guest output held in the guest before they are sent to the host at once. */
export const guestOutputChunkChars = 8192
/** A print that comes this long (guest time, ms) after the last send goes to the host at once. */
export const guestOutputQuietMs = 2

// The guest's console, built inside its realm: a call to the host costs tens of
// microseconds, so console.log formats and appends to a string here and hands the host
// one chunk per guestOutputChunkChars characters, or at once when the previous send is
// guestOutputQuietMs old (so a line printed after a pause reaches the host even if the
// guest then wedges its worker). The host drains the rest when the call returns. The
// function it returns is that drain; `send` is the host's writer, reachable only from
// these closures. Built-ins are bound now, so a guest that replaces them changes only
// how its own values print.
const consoleSource = `(send, format) => {
  const now = Date.now
  const join = Array.prototype.join
  let parts = []
  let count = 0
  let chars = 0
  let sentAt = -Infinity
  const flush = () => {
    const chunk = join.call(parts, "")
    parts = []
    count = 0
    chars = 0
    sentAt = now()
    send(chunk)
  }
  const log = function (...args) {
    for (let i = 0; i < args.length; i++) {
      const a = args[i]
      let text
      if (typeof a === "string") text = a
      else if (typeof a === "number" || typeof a === "boolean") text = "" + a
      else {
        try { text = format(a) } catch (e) { text = "[unprintable]" }
      }
      if (i > 0) parts[count++] = " "
      parts[count++] = text
      chars += text.length + 1
    }
    parts[count++] = "\\n"
    if (chars >= ${guestOutputChunkChars} || now() - sentAt >= ${guestOutputQuietMs}) flush()
  }
  const console = {}
  for (const method of ["log", "info", "warn", "error", "debug"]) console[method] = log
  globalThis.console = console
  return () => { if (count > 0) flush() }
}`

const classify = (message: string): FailureKind => /out of memory/i.test(message) ? "memory" : /interrupted/i.test(message) ? "timeout" : "error"

/**
 * Load QuickJS and return an engine.
 *
 * @example
 * const engine = await quickJsEngine({ output: OutputCapture.shared(65536), outputLimitBytes: 65536, jsStackBytes: 524288 })
 * engine.run({ code: "1+2", session: null, timeoutMs: 1000, memoryMb: 64 }) // value "3"
 */
export const quickJsEngine = async (options: {
  /** Where the guest's console writes (shared with the host). */
  readonly output: OutputCapture
  readonly outputLimitBytes: number
  readonly jsStackBytes: number
}): Promise<Engine> => {
  const ceiling = installHeapCeiling()
  const QuickJS = await getQuickJS()
  const sessions = new Map<string, Vm>()
  const output = options.output
  // Guest memory is measured from the heap QuickJS starts with; sessions kept alive in
  // this worker count against the ceiling of every call, as they share the heap.
  const module: unknown = Reflect.get(QuickJS, "module")
  const heapBytes = (): number => {
    const heap: unknown = typeof module === "object" && module !== null ? Reflect.get(module, "HEAPU8") : undefined
    if (!(heap instanceof Uint8Array)) throw new Error("quickjs: the emscripten heap is not reachable")
    return heap.buffer.byteLength
  }
  const baseline = heapBytes()

  const newVm = (memoryMb: number): Vm => {
    const runtime = QuickJS.newRuntime()
    runtime.setMemoryLimit(memoryMb * 1024 * 1024)
    runtime.setMaxStackSize(options.jsStackBytes)
    const context = runtime.newContext()
    const formatter = context.unwrapResult(context.evalCode(formatValueSource, "format.js"))
    const install = context.unwrapResult(context.evalCode(consoleSource, "console.js"))
    const send = context.newFunction("send", (chunk: QuickJSHandle) => {
      if (context.typeof(chunk) === "string") output.write(context.getString(chunk))
    })
    const drain = context.unwrapResult(context.callFunction(install, context.undefined, send, formatter))
    install.dispose()
    send.dispose()
    return { runtime, context, formatter, drain }
  }

  const dispose = (vm: Vm): boolean => {
    try {
      vm.formatter.dispose()
      vm.drain.dispose()
      vm.context.dispose()
      vm.runtime.dispose()
      return true
    } catch {
      return false // a leaked handle: the worker is retired rather than trusted
    }
  }

  const run = (cell: Cell): { outcome: GuestOutcome; retire: boolean } => {
    const existing = cell.session === null ? undefined : sessions.get(cell.session)
    const vm = existing ?? newVm(cell.memoryMb)
    if (cell.session !== null && existing === undefined) sessions.set(cell.session, vm)
    output.reset()
    const limitBytes = cell.memoryMb * 1024 * 1024
    vm.runtime.setMemoryLimit(limitBytes)
    vm.runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + cell.timeoutMs))
    let outcome: GuestOutcome
    try {
      ceiling.lower(baseline + limitBytes)
      const result = vm.context.evalCode(cell.code, "cell.js")
      if (result.error !== undefined) {
        ceiling.lift() // inspecting the error allocates
        const thrownNull = vm.context.typeof(result.error) === "object" && vm.context.dump(result.error) === null
        let message = errorText(vm.context, result.error)
        result.error.dispose()
        // QuickJS throws null when it cannot even allocate the exception object.
        const exhausted = thrownNull && (ceiling.refused() || memoryUsed(vm) >= 0.9 * limitBytes)
        if (exhausted) message = "InternalError: out of memory"
        drainGuestOutput(vm)
        outcome = { ok: false, kind: exhausted ? "memory" : classify(message), error: message, stdout: output.text() }
      } else {
        const value = result.value
        // Settle promise callbacks the cell scheduled (their console output belongs to it).
        const jobs = vm.runtime.executePendingJobs()
        if (jobs.error !== undefined) jobs.error.dispose()
        const text = vm.context.typeof(value) === "undefined" ? null : stringify(vm, value)
        ceiling.lift()
        value.dispose()
        drainGuestOutput(vm)
        outcome = { ok: true, stdout: output.text(), value: text === null ? null : capText(text, options.outputLimitBytes) }
      }
    } catch (cause) {
      // The interpreter itself failed (not a guest exception): report and retire.
      ceiling.lift()
      const message = cause instanceof Error ? cause.message : String(cause)
      const kind = classify(message) === "memory" || ceiling.refused() ? "memory" : "crash"
      return { outcome: { ok: false, kind, error: `InternalError: ${message}`, stdout: output.text() }, retire: true }
    }
    vm.runtime.removeInterruptHandler()
    if (cell.session === null) return { outcome, retire: !dispose(vm) }
    return { outcome, retire: false }
  }

  const closeSession = (session: string): void => {
    const vm = sessions.get(session)
    if (vm === undefined) return
    sessions.delete(session)
    dispose(vm)
  }

  return { run, closeSession }
}

/**
 * Send what the guest's console still holds to the host's output. Runs after the call,
 * without its deadline or memory limit (both may be spent), so the guest's last lines
 * are never lost to them.
 */
const drainGuestOutput = (vm: Vm): void => {
  vm.runtime.removeInterruptHandler()
  vm.runtime.setMemoryLimit(-1)
  const result = vm.context.callFunction(vm.drain, vm.context.undefined)
  if (result.error !== undefined) result.error.dispose()
  else result.value.dispose()
}

/** Bytes the runtime has allocated (the limit is lifted while measuring, since measuring allocates). */
const memoryUsed = (vm: Vm): number => {
  vm.runtime.setMemoryLimit(-1)
  const usage = vm.runtime.computeMemoryUsage()
  const dumped: unknown = vm.context.dump(usage)
  usage.dispose()
  return typeof dumped === "object" && dumped !== null && "memory_used_size" in dumped && typeof dumped.memory_used_size === "number"
    ? dumped.memory_used_size
    : 0
}

/** Render a guest value with the in-realm formatter; failures (a throwing toJSON) become a placeholder. */
const stringify = (vm: Vm, handle: QuickJSHandle): string => {
  const context = vm.context
  const result = context.callFunction(vm.formatter, context.undefined, handle)
  if (result.error !== undefined) {
    result.error.dispose()
    return "[unprintable]"
  }
  const text = context.getString(result.value)
  result.value.dispose()
  return text
}

/** "Name: message" of a thrown guest value. */
const errorText = (context: QuickJSContext, handle: QuickJSHandle): string => {
  const dumped: unknown = context.dump(handle)
  if (typeof dumped === "object" && dumped !== null && "message" in dumped) {
    const name = "name" in dumped && typeof dumped.name === "string" ? dumped.name : "Error"
    return `${name}: ${String(dumped.message)}`
  }
  return `Uncaught ${typeof dumped === "string" ? dumped : JSON.stringify(dumped) ?? String(dumped)}`
}
